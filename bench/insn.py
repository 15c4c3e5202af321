#!/usr/bin/env python3
"""Instructions per command from one callgrind file of airlockd (bench/insn.sh runs it).

Usage: insn.py pg|https FILE. Reads callgrind_annotate's inclusive caller tree: the commands are
the calls of the function that decides each one (decide_query for a statement,
http_command_parse for a request); what starting the sessions cost (pg_scram_continue: the
upstream SCRAM login; SSL_do_handshake: every TLS handshake) is taken out of the total; the
parts are inclusive counts of the functions named, so a part may hold another.
"""
import re
import subprocess
import sys

WORKLOADS = {
    "pg": {
        "command": "decide_query",
        "unit": "statement",
        "setup": ["pg_scram_continue"],
        "parts": [
            ("batch_commit", "the group commit: the batch's JSON, its chained record, SQLite"),
            ("rec_msg", "recording the session's messages"),
            ("decide_query", "classifying (libpg_query, cached), deciding, auditing the statement"),
            ("frame_typed", "framing the protocol's messages"),
            ("push", "writing to the sockets (sock_out)"),
        ],
    },
    "https": {
        "command": "http_command_parse",
        "unit": "request",
        "setup": ["SSL_do_handshake"],
        "parts": [
            ("batch_commit", "the group commit: the batch's JSON, its chained record, SQLite"),
            ("SSL_read", "TLS: reading and decrypting (both sides)"),
            ("SSL_write", "TLS: encrypting and writing (both sides)"),
            ("http_parse_request", "parsing the request"),
            ("http_command_parse", "the command: digests, headers, fields"),
            ("http_parse_response", "parsing the response"),
            ("audit_request", "queueing the request's audit row"),
        ],
    },
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in WORKLOADS:
        sys.exit("usage: insn.py pg|https CALLGRIND_FILE")
    w = WORKLOADS[sys.argv[1]]
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--tree=caller", "--threshold=100",
                          sys.argv[2]], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    total = re.search(r"^\s*([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", out, re.M)
    if not total:
        sys.exit("insn.py: no totals in callgrind_annotate's output")
    total = int(total.group(1).replace(",", ""))

    def num(text):
        return int(text.replace(",", ""))

    def inclusive(fn):
        """The function's inclusive count and how many times it was called (0, 0 if never)."""
        pat = re.compile(r"^\s*([\d,]+) .*\*  \S*?:%s(?: \[|$)" % re.escape(fn))
        for i, line in enumerate(lines):
            m = pat.match(line)
            if not m:
                continue
            calls, j = 0, i - 1
            while j >= 0 and "  < " in lines[j]:
                c = re.search(r"\(([\d,]+)x\)", lines[j])
                calls += num(c.group(1)) if c else 0
                j -= 1
            return num(m.group(1)), calls
        return 0, 0

    _, n = inclusive(w["command"])
    if n == 0:
        sys.exit("insn.py: %s was never called: no %ss were decided" % (w["command"], w["unit"]))
    setup = sum(inclusive(fn)[0] for fn in w["setup"])
    print("%s: %d %ss; %.1fM instructions in airlockd's loop and checkpoint thread, %.1fM of them"
          " starting sessions (%s)" % (sys.argv[1], n, w["unit"], total / 1e6, setup / 1e6, ", ".join(w["setup"])))
    print("  %8.0f instructions per %s" % ((total - setup) / n, w["unit"]))
    for fn, what in w["parts"]:
        print("  %8.0f  %-20s %s" % (inclusive(fn)[0] / n, fn, what))


if __name__ == "__main__":
    main()
