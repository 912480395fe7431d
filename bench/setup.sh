#!/usr/bin/env bash
# Prepare the benchmark anchors (run by hand; never by CI or the test suite).
#
# - bench/.venv-anchors: a separate virtualenv with octoDNS (its YamlProvider is in the core
#   package) and ansible-core, so their dependencies never mix with penguinctl's.
# - bench/.venv-octodns: octoDNS + octodns-bind (its Rfc2136Provider) for the RFC 2136 publish
#   benchmark (bench/dns_rfc2136.py), kept apart from the anchors venv so that benchmark's
#   octoDNS can be pinned on its own.
# - bench/.venv-anchors also gets pyinfra 3 and fabric 3 for the SSH fan-out benchmark
#   (bench/fanout.py), and a system user `penguinbench` (shell /bin/sh) that benchmark logs in as.
# - BIND 9 (`named`, Debian bind9) for that benchmark, when we are root and it is missing.
# - hyperfine and GNU time from Debian when we are root and they are missing (optional:
#   run.py falls back to a subprocess timing loop and to getrusage); wrk for bench/api.py.
#
# penguinctl itself runs from the main Python environment: the active virtualenv ($VIRTUAL_ENV),
# else the repository's .venv (the quickstart's; created here if missing, never the system
# interpreter, which PEP 668 protects). It gets penguinctl and its test extras: the benches import
# test helpers (tests/bind.py, tests/smtpsink.py, ...) that need pytest and aiosmtpd.
# Idempotent: re-running only installs what is missing.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$BENCH_DIR")"
VENV="$BENCH_DIR/.venv-anchors"
PYTHON="${PYTHON:-python3}"

# The main environment: penguinctl (editable) with the test extras.
if [ -n "${VIRTUAL_ENV:-}" ]; then
  MAIN_PY="$VIRTUAL_ENV/bin/python"
else
  if [ ! -x "$REPO/.venv/bin/python" ]; then
    echo "creating $REPO/.venv"
    "$PYTHON" -m venv "$REPO/.venv" \
      || { echo "error: '$PYTHON -m venv' failed (Debian/Ubuntu: sudo apt install python3-venv)" >&2; exit 1; }
  fi
  MAIN_PY="$REPO/.venv/bin/python"
fi
if ! "$MAIN_PY" -c 'import penguinctl, pytest, aiosmtpd, dkim, yaml, dns, sqlalchemy' 2>/dev/null; then
  echo "installing penguinctl[test] into $("$MAIN_PY" -c 'import sys; print(sys.prefix)')"
  "$MAIN_PY" -m pip install --quiet --disable-pip-version-check -e "$REPO[test]"
fi

# Versions are pinned loosely: octoDNS 1.x (dynamic '*' zones and YamlProvider.list_zones) and a
# current ansible-core. Change them here, not in the project's dependencies.
OCTODNS_SPEC="${OCTODNS_SPEC:-octodns>=1.10,<2}"
ANSIBLE_SPEC="${ANSIBLE_SPEC:-ansible-core>=2.16}"
OCTODNS_BIND_SPEC="${OCTODNS_BIND_SPEC:-octodns-bind>=1.0,<2}"
PYINFRA_SPEC="${PYINFRA_SPEC:-pyinfra>=3.1,<4}"
FABRIC_SPEC="${FABRIC_SPEC:-fabric>=3.2,<4}"
VENV_OCTODNS="$BENCH_DIR/.venv-octodns"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

if ! "$VENV/bin/python" -c 'import octodns, ansible' 2>/dev/null \
   || [ ! -x "$VENV/bin/octodns-sync" ] || [ ! -x "$VENV/bin/ansible-playbook" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "$OCTODNS_SPEC" "$ANSIBLE_SPEC"
fi

if ! "$VENV/bin/python" -c 'import pyinfra, fabric' 2>/dev/null || [ ! -x "$VENV/bin/pyinfra" ]; then
  "$VENV/bin/python" -m pip install --quiet "$PYINFRA_SPEC" "$FABRIC_SPEC"
fi

# bench/fanout.py logs in as this user: root's login shell may run slow rc files per command.
if ! id penguinbench >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    useradd --system --create-home --home-dir /var/lib/penguinbench --shell /bin/sh penguinbench
    # "!" (locked) makes sshd refuse even key logins when it runs without PAM; "*": no password
    usermod -p '*' penguinbench
  else
    echo "note: run as root to create the penguinbench user bench/fanout.py needs" >&2
  fi
fi

if [ ! -x "$VENV_OCTODNS/bin/python" ]; then
  echo "creating $VENV_OCTODNS"
  "$PYTHON" -m venv "$VENV_OCTODNS"
fi

if ! "$VENV_OCTODNS/bin/python" -c 'import octodns, octodns_bind' 2>/dev/null \
   || [ ! -x "$VENV_OCTODNS/bin/octodns-sync" ]; then
  "$VENV_OCTODNS/bin/python" -m pip install --quiet --upgrade pip
  "$VENV_OCTODNS/bin/python" -m pip install --quiet "$OCTODNS_SPEC" "$OCTODNS_BIND_SPEC"
fi

# Optional system tools.
missing=()
if ! command -v named >/dev/null 2>&1 && [ ! -x /usr/sbin/named ]; then
  missing+=(bind9)
fi
command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)  # bench/api.py's load generator
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} with apt-get"
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; } \
      || echo "warning: could not install ${missing[*]}; run.py will fall back" >&2
  else
    echo "note: ${missing[*]} not installed; run.py falls back to its own timing" >&2
  fi
fi

echo "benches run with: $MAIN_PY (e.g. $MAIN_PY bench/run.py --quick)"
echo "anchors ready:"
"$VENV/bin/octodns-sync" --version 2>/dev/null || "$VENV/bin/python" -c 'import octodns; print("octodns", octodns.__version__)'
ansible_version="$("$VENV/bin/ansible-playbook" --version)"  # not piped to head: SIGPIPE
echo "${ansible_version%%$'\n'*}"
"$VENV/bin/python" -c 'import importlib.metadata as m; print("pyinfra", m.version("pyinfra"), "+ fabric", m.version("fabric"))'
"$VENV_OCTODNS/bin/python" -c 'import importlib.metadata as m; print("octodns", m.version("octodns"), "+ octodns-bind", m.version("octodns-bind"), "(bench/.venv-octodns)")'
{ command -v named || echo /usr/sbin/named; } | { read -r n; [ -x "$n" ] && "$n" -v || echo "named: missing (bench/dns_rfc2136.py needs it)"; }
command -v hyperfine >/dev/null 2>&1 && hyperfine --version || true
