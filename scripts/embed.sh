#!/bin/sh
# Turns a file into a C byte array (NUL-terminated) so a binary carries it: embed.sh NAME FILE
set -e
name=$1 file=$2
printf '/* Generated from %s by scripts/embed.sh. */\n#include <stddef.h>\n' "$file"
printf 'const char %s[] = {\n' "$name"
od -An -v -tx1 "$file" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^/\t/'
printf '\t0x00\n};\nconst size_t %s_len = sizeof(%s) - 1;\n' "$name" "$name"
