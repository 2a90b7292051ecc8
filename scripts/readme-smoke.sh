#!/usr/bin/env bash
# Runs the README's shell examples ("Try it", "Walk the whole lifecycle", "Demo data")
# verbatim against a fresh server and data directory, and checks what they print.
# Usage: scripts/readme-smoke.sh [path/to/uplift]
set -euo pipefail

source "$(dirname "$0")/lib/server.sh"
uplift_script_binary "${1:-}"
serve_from_scratch "$uplift"
export UPLIFT_LISTEN=127.0.0.1:$port

# The README's ```sh blocks of these sections, with its binary path and port swapped in.
python3 - "$repo/README.md" "$uplift" "$port" >walkthrough.sh <<'PY'
import re, sys
readme, binary, port = sys.argv[1], sys.argv[2], sys.argv[3]
sections = ("## Try it", "## Walk the whole lifecycle", "## Demo data in one command")
text = open(readme).read()
out = []
for title in sections:
    body = text.split(title, 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```sh\n(.*?)```", body, re.S):
        out.append(block.replace("./target/release/uplift", binary).replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
print("set -euo pipefail\nuplift() { %s \"$@\"; }\n" % binary + "\n".join(out).replace("uplift() { %s \"$@\"; }" % binary, ""))
PY
bash walkthrough.sh >output.txt 2>walkthrough.err || { cat walkthrough.err output.txt server.log >&2; exit 1; }
cat output.txt

fail() { echo "readme-smoke: $*" >&2; cat walkthrough.err >&2; exit 1; }
grep -q '"code":"not_found"' output.txt || fail "the first bulk call did not answer with not_found"
grep -q '"deployVersion":2' output.txt || fail "the second publish did not become version 2"
[ "$(grep -o '"version":2,"previousVersion":1' output.txt | wc -l)" = 3 ] || fail "the bulk call did not upgrade three deployments"
grep -q '"@odata.count":3' output.txt || fail "the list did not show the three deployments"
python3 - output.txt <<'PY' || fail "uplift seed --demo did not print the demo JSON"
import json, sys
text = open(sys.argv[1]).read()
demo = json.loads(text[text.index('{\n'):])
assert {"tenantId", "folders", "deployments", "tokens"} <= demo.keys(), demo.keys()
assert len(demo["deployments"]) == 12 and len(demo["tokens"]) == 3
PY
echo "readme-smoke: ok"
