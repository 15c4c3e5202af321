"""The loopback listener capture_http.py and capture_pg.py record real clients through."""

import socket
import threading


class Listener:
    """Accepts on a loopback port (self.port). Each connection c is handed to connection(c),
    which returns its record and the threads' work: [(function, args), ...]. take() waits for
    the threads started since the last take and returns the records of those connections, in
    the order they were accepted."""

    def __init__(self):
        self.records = []
        self.lock = threading.Lock()
        self.threads = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def connection(self, c):
        raise NotImplementedError

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            record, work = self.connection(c)
            with self.lock:
                self.records.append(record)
                for fn, args in work:
                    t = threading.Thread(target=fn, args=args, daemon=True)
                    t.start()
                    self.threads.append(t)

    def take(self):
        with self.lock:
            threads, self.threads = self.threads, []
        for t in threads:
            t.join(timeout=10)
        with self.lock:
            got, self.records = self.records, []
        return got
