#!/usr/bin/env bash
# Runs the commands shown in README.md and docs/*.md against a freshly built `telehub` (and
# `firmware-sim`), so every command the docs show keeps working. Exits 1 when one fails.
#
# Usage: ./scripts/check-docs.sh [FILE.md ...]    (default: README.md docs/*.md)
#   TELEHUB_BIN=… FIRMWARE_SIM_BIN=…   use these binaries instead of building them
#   CHECK_DOCS_VERBOSE=1               print every block's output, not only failures' output
#
# What is checked, in order:
# 1. Commands named in the text. Every `telehub SUBCOMMAND [SUBCOMMAND]` (and `firmware-sim …`)
#    written in a code span or an sh/bash block names an existing subcommand (`--help` exits 0), and
#    every `--flag` written after it in the same span or line is in that subcommand's `--help`.
#    `a\|b` alternatives (in tables) are each checked.
# 2. ```sh / ```bash blocks: each block runs as one `bash -euo pipefail` script, in a temporary
#    folder of its own, against a hub of its own (`telehub serve` on a free port with a fresh
#    SQLite database). Before running it:
#    - `cargo run --release --` is replaced by `telehub`, and `127.0.0.1:8080` by the hub's
#      address; `telehub` and `firmware-sim` are first on PATH;
#    - TELEHUB_DATABASE__URL points at the hub's database, so CLI commands see what it stores;
#    - the tokens the block uses exist and are exported: DEVICE_TOKEN and TELEHUB_DEVICE_TOKEN
#      (the token of device `boiler-1`), VIEWER (a viewer token), ADMIN (an admin token),
#      OPERATOR (an operator token), and every device `boiler-N` the block names; a
#      block that uses none of them may add `boiler-1` itself;
#    - `rules.jsonl` holds one alert rule (for `telehub alert import rules.jsonl`);
#    - `curl` fails on an HTTP error status (it runs with --fail-with-body).
#    A nonzero exit of any command fails the block. Lines starting with `#` are comments (the
#    docs use them for sample output).
# 3. ```toml blocks are hub (or bridge) configuration: `telehub serve --config FILE
#    --print-config` must accept each one.
# 4. ```json blocks parse as one JSON value, or as one JSON value per line.
# 5. Relative links point at files that exist, and `#anchors` at headings of the target page.
#
# A block that cannot run here (a serial port, systemd, another host, a command that runs until
# stopped, a configuration of another program) is marked in the Markdown with an HTML comment on
# the line before its opening fence (blank lines between are allowed), which GitHub does not show:
#
#     <!-- no-check: why it cannot run in CI -->
#
# The commands named in a skipped block are still checked as in 1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${TELEHUB_BIN:-}" ] || [ -z "${FIRMWARE_SIM_BIN:-}" ]; then
  echo "==> building telehub and firmware-sim (release)" >&2
  cargo build --release -p telehub -p firmware-sim --bins
  target="${CARGO_TARGET_DIR:-target}"
  : "${TELEHUB_BIN:=$target/release/telehub}"
  : "${FIRMWARE_SIM_BIN:=$target/release/firmware-sim}"
fi
TELEHUB_BIN="$(realpath "$TELEHUB_BIN")"
FIRMWARE_SIM_BIN="$(realpath "$FIRMWARE_SIM_BIN")"
export TELEHUB_BIN FIRMWARE_SIM_BIN

if [ "$#" -eq 0 ]; then
  set -- README.md docs/*.md
fi

exec python3 - "$@" <<'PY'
import json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

TELEHUB = os.environ["TELEHUB_BIN"]
SIM = os.environ["FIRMWARE_SIM_BIN"]
VERBOSE = os.environ.get("CHECK_DOCS_VERBOSE") == "1"
BINS = {"telehub": TELEHUB, "firmware-sim": SIM}
failures = []
counts = {"blocks run": 0, "blocks skipped": 0, "toml": 0, "json": 0, "commands named": 0}

def fail(where, what, output=""):
    failures.append(where)
    print(f"FAIL {where}: {what}")
    if output:
        print("    " + output.strip().replace("\n", "\n    "))

# ---------------------------------------------------------------- Markdown
FENCE = re.compile(r"^```(\w*)\s*$")
NOCHECK = re.compile(r"^<!--\s*no-check(?::\s*(.*?))?\s*-->\s*$")

def blocks(path):
    """(lang, first line number, text, skip reason or None) for each fenced block."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i, pending = [], 0, None
    while i < len(lines):
        m = FENCE.match(lines[i])
        n = NOCHECK.match(lines[i])
        if n:
            pending = n.group(1) or "marked no-check"
        elif m:
            lang, start, body = m.group(1), i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append((lang, start, "\n".join(body), pending))
            pending = None
        elif lines[i].strip():
            pending = None
        i += 1
    return out

def prose(path):
    """The text outside fenced blocks, and each code span in it."""
    text, inside = [], False
    for line in open(path, encoding="utf-8").read().split("\n"):
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside:
            text.append(line)
    joined = "\n".join(text)
    # Code spans may wrap across lines in a paragraph.
    return [s.replace("\n", " ") for s in re.findall(r"`([^`]+)`", joined)]

# ---------------------------------------------------------------- 1. commands named
help_cache = {}

def help_of(prog, path):
    key = (prog, tuple(path))
    if key not in help_cache:
        r = subprocess.run([BINS[prog], *path, "--help"], capture_output=True, text=True)
        help_cache[key] = r.stdout if r.returncode == 0 else None
    return help_cache[key]

def subcommands(help_text):
    subs, inside = set(), False
    for line in help_text.split("\n"):
        if line.startswith("Commands:"):
            inside = True
            continue
        if inside:
            if not line.startswith("  "):
                break
            subs.add(line.split()[0])
    return subs

def check_mention(where, text):
    """Checks every `telehub …` / `firmware-sim …` written in one span or line."""
    # Stop at shell separators and comments: what follows is another command.
    text = text.replace("cargo run --release --", "telehub")
    for piece in re.split(r"\s(?:;|&&|\|\||#)\s|\s\|\s", text):
        words = piece.replace("$(", " ").replace("(", " ").replace(")", " ").split()
        for k, w in enumerate(words):
            if w in BINS:
                check_command(where, w, words[k + 1:])
                break

def check_command(where, prog, rest):
    path = []
    if help_of(prog, path) is None:
        return fail(where, f"`{prog} --help` failed")
    while rest and re.fullmatch(r"[a-z][a-z-]*(\\?\|[a-z][a-z-]*)*", rest[0]):
        subs = subcommands(help_of(prog, path))
        if not subs:
            break  # a leaf: the word is a value
        alts = re.split(r"\\?\|", rest[0])
        for a in alts:
            if a not in subs:
                return fail(where, f"`{' '.join([prog, *path, a])}`: no such subcommand")
            counts["commands named"] += 1
            if help_of(prog, path + [a]) is None:
                return fail(where, f"`{' '.join([prog, *path, a])} --help` failed")
        if len(alts) > 1:
            return  # `a\|b` alternatives: flags after them are not checked
        path.append(alts[0])
        rest = rest[1:]
    h = help_of(prog, path)
    for word in rest:
        if word in BINS:
            break
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", word):
            if flag not in ("--help", "--version") and not re.search(
                rf"(?<![\w-]){re.escape(flag)}(?![\w-])", h
            ):
                fail(where, f"`{' '.join([prog, *path])}` has no flag {flag}")

# ---------------------------------------------------------------- 2. sh blocks
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

def run(cmd, env, cwd, timeout=60):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout.strip()

class Hub:
    """A hub of its own for one block: a temporary folder, SQLite, a free port."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="telehub-docs-")
        bindir = os.path.join(self.dir, ".bin")
        os.mkdir(bindir)
        for name, path in BINS.items():
            os.symlink(path, os.path.join(bindir, name))
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
        env["PATH"] = bindir + os.pathsep + env["PATH"]
        env["TELEHUB_DATABASE__URL"] = f"sqlite://{self.dir}/telehub-data/telehub.db"
        env["NO_COLOR"] = "1"
        self.env = env
        self.log = open(os.path.join(self.dir, "hub.log"), "w")
        self.proc = subprocess.Popen(
            [TELEHUB, "serve", "--listen", self.addr],
            env=env, cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{self.addr}/healthz", timeout=1).read()
                break
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("the hub did not start: " + open(self.log.name).read()[-2000:])
                time.sleep(0.05)

    def fixtures(self, script):
        """Creates the tokens the block uses (only those, so it may add the same names)."""
        env = self.env
        if re.search(r"\$\{?(TELEHUB_)?DEVICE_TOKEN\b", script):
            d = run(["telehub", "device", "add", "boiler-1"], env, self.dir)
            env["DEVICE_TOKEN"] = env["TELEHUB_DEVICE_TOKEN"] = d
        if re.search(r"\$\{?VIEWER\b", script):
            env["VIEWER"] = run(["telehub", "token", "add", "check-viewer", "--role", "viewer"], env, self.dir)
        if re.search(r"\$\{?ADMIN\b", script):
            env["ADMIN"] = run(["telehub", "token", "add", "check-admin", "--role", "admin"], env, self.dir)
        if re.search(r"\$\{?OPERATOR\b", script):
            env["OPERATOR"] = run(["telehub", "token", "add", "check-operator", "--role", "operator"], env, self.dir)
        # Devices the block names (boiler-1, boiler-2, ...) exist, once each.
        made = {"boiler-1"} if "DEVICE_TOKEN" in env else set()
        made |= set(re.findall(r"device add (boiler-\d+)", script))  # the block adds these itself
        for name in sorted(set(re.findall(r"\bboiler-\d+\b", script)) - made):
            run(["telehub", "device", "add", name], env, self.dir)

    def files(self):
        with open(os.path.join(self.dir, "rules.jsonl"), "w") as f:
            f.write('{"name": "check-hot", "pattern": "*/temperature", "kind": "threshold", "op": ">", "value": 90}\n')

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

PRELUDE = 'curl() { command curl --fail-with-body "$@"; }\n'

def run_block(where, text):
    script = text.replace("cargo run --release --", "telehub")
    hub = Hub()
    try:
        script = script.replace("127.0.0.1:8080", hub.addr)
        hub.fixtures(script)
        hub.files()
        r = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", PRELUDE + script],
            env=hub.env, cwd=hub.dir, capture_output=True, text=True, timeout=300,
        )
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0:
            fail(where, f"exited {r.returncode}", out[-3000:])
        else:
            print(f"ok   {where}")
            if VERBOSE and out:
                print("    " + out[-3000:].replace("\n", "\n    "))
    except subprocess.TimeoutExpired:
        fail(where, "did not finish within 300 s")
    finally:
        hub.close()

# ---------------------------------------------------------------- 3./4. toml and json
def check_toml(where, text):
    d = tempfile.mkdtemp(prefix="telehub-docs-")
    try:
        path = os.path.join(d, "telehub.toml")
        open(path, "w").write(text + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
        r = subprocess.run([TELEHUB, "serve", "--config", path, "--print-config"],
                           env=env, cwd=d, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            fail(where, "the hub refuses this configuration", r.stderr)
        else:
            print(f"ok   {where} (toml)")
    finally:
        shutil.rmtree(d, ignore_errors=True)

def check_json(where, text):
    try:
        json.loads(text)
    except ValueError:
        for n, line in enumerate(text.split("\n"), 1):
            if line.strip():
                try:
                    json.loads(line)
                except ValueError as e:
                    fail(where, f"line {n} is not JSON: {e}")
                    return
    print(f"ok   {where} (json)")

# ---------------------------------------------------------------- 5. links
def anchors(path):
    found = set()
    for line in open(path, encoding="utf-8").read().split("\n"):
        m = re.match(r"^#+\s+(.*)", line)
        if m:
            found.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return found

def check_links(path):
    text = re.sub(r"```.*?```", "", open(path, encoding="utf-8").read(), flags=re.S)
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        link = m.group(1)
        if re.match(r"[a-z]+:", link):
            continue
        file, _, anchor = link.partition("#")
        target = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        if not os.path.exists(target):
            fail(path, f"link to {link}: no such file")
        elif anchor and target.endswith(".md") and anchor not in anchors(target):
            fail(path, f"link to {link}: no such heading")

# ---------------------------------------------------------------- main
for path in sys.argv[1:]:
    check_links(path)
    for span in prose(path):
        check_mention(f"{path} `{span[:60]}`", span)
    for lang, line, text, skip in blocks(path):
        where = f"{path}:{line}"
        if lang in ("sh", "bash"):
            for l in text.replace("\\\n", " ").split("\n"):
                if not l.lstrip().startswith("#"):
                    check_mention(where, l)
        if skip:
            counts["blocks skipped"] += 1
            print(f"skip {where} ({lang}): {skip}")
        elif lang in ("sh", "bash"):
            counts["blocks run"] += 1
            run_block(where, text)
        elif lang == "toml":
            counts["toml"] += 1
            check_toml(where, text)
        elif lang == "json":
            counts["json"] += 1
            check_json(where, text)

summary = ", ".join(f"{v} {k}" for k, v in counts.items())
if failures:
    print(f"\ncheck-docs: {len(failures)} failure(s); {summary}")
    sys.exit(1)
print(f"\ncheck-docs: all good; {summary}")
PY
