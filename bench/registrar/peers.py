"""The two registrars under test, set up the same way for bench/registrar's drivers.

Writes a sipedge TOML config and its SQLite subscriber store, or a Kamailio command line and
its db_text password table; starts nothing itself (the drivers spawn what :func:`peer_argv`
returns). Also: SIPp user files, waiting for a UDP port, memory figures from /proc and
Kamailio's ``core.shmmem`` over its binrpc socket (``kamcmd``).

Users are ``a<i>`` with password ``p<i>x`` (i = 1..N) in realm = the listen address, the same
for both peers; the sipedge store holds HA1s only (made by the same code as ``sipedge user
add``), Kamailio's table the plain text (its ``pv_www_authenticate`` needs the password).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path.insert(0, str(BENCH))

import procfs  # noqa: E402  (bench/procfs.py, shared with call_rate.py)

PEERS = ("sipedge", "kamailio")
KAMAILIO_CFG = HERE / "kamailio" / "registrar.cfg"
MEM_PROBE = str(HERE / "mem_probe.py")
GC_PROBE = str(BENCH / "gc_probe.py")
# SIPp flags shared by every run (same as bench/call_rate.py).
SIPP_COMMON = ["-nostdin", "-buff_size", "4194304", "-default_behaviors", "all,-abortunexp"]


@dataclass(frozen=True)
class Site:
    """Where everything listens (one loopback address) and where run files go."""

    ip: str
    port: int  # the registrar under test
    uac_port: int  # SIPp client
    uas_port: int  # SIPp callee (reg_scale.py)
    work: Path  # one run's directory

    @property
    def realm(self) -> str:
        """Digest realm of both peers: sipedge's default (first listener host), and the
        To domain Kamailio's config challenges with."""
        return self.ip


def check_loopback(ip: str) -> None:
    """Refuse anything outside 127/8: the bench never sends off the machine."""
    if not ip.startswith("127."):
        raise SystemExit(f"refusing non-loopback address {ip}")


def sipedge_config(site: Site, *, auth: bool, persist: bool, security: bool = False) -> Path:
    """Write ``sipedge.toml`` into ``site.work`` and return it.

    ``auth``: trust no source, so every REGISTER is challenged; MD5 is offered first because
    SIPp 3.6 answers only the first challenge and knows only MD5. Otherwise the loopback is
    trusted (REGISTER accepted without a challenge). ``persist`` = registrar.persist (SQLite
    write-through per REGISTER); off is the counterpart of Kamailio's usrloc db_mode 0.
    One contact per AOR, as Kamailio's ``max_contacts``.

    ``security`` off (default) disables the [security] checks, as Kamailio's config has no
    pike or scanner rules: on, the flood detector bans the single load source (an untrusted
    127.0.0.6) within a second. On, the checks run but the flood threshold is out of reach,
    which prices them.
    """
    sec = "flood_density = 100000000" if security else "enabled = false"
    trusted = "[]" if auth else '["127.0.0.0/8"]'
    text = f"""\
[server]
listen = ["udp:{site.ip}:{site.port}"]
trusted = {trusted}
state_dir = "{site.work / "state"}"
log_level = "warning"

[auth]
realm = "{site.realm}"
algorithms = ["MD5", "SHA-256"]

[registrar]
persist = {"true" if persist else "false"}
max_contacts = 1

[security]
{sec}
"""
    path = site.work / "sipedge.toml"
    path.write_text(text)
    return path


def sipedge_users(cache: Path, realm: str, n: int, into: Path) -> None:
    """Copy a users.db with ``n`` users of ``realm`` to ``into``, building it once in
    ``cache`` (same store and HA1 code as ``sipedge user add``, minus 10,000 process starts)."""
    db = cache / f"sipedge-users-{realm}-{n}.db"
    if not db.exists():
        tmp = db.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        started = time.monotonic()
        asyncio.run(_fill_users(tmp, realm, n))
        tmp.rename(db)
        print(f"# {db}: {n} users in {time.monotonic() - started:.1f}s", file=sys.stderr)
    into.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(db, into)


async def _fill_users(path: Path, realm: str, n: int) -> None:
    from sipedge.auth.store import SqliteCredentialStore

    store = SqliteCredentialStore(path)
    for i in range(1, n + 1):
        await store.add(f"a{i}", realm, f"p{i}x")
    stored = await store.list(realm)
    if len(stored) != n:
        raise SystemExit(f"{path}: {len(stored)} users stored, {n} expected")


def kamailio_users(dbdir: Path, n: int) -> str:
    """Write the db_text table ``passwords`` (htable layout: key_name = user, key_value =
    password) into ``dbdir``; return the db_url for ``USERS_DB``."""
    dbdir.mkdir(parents=True, exist_ok=True)
    rows = [f"{i}:a{i}:0:0:p{i}x:0" for i in range(1, n + 1)]
    head = "id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) "
    head += "expires(int)"
    (dbdir / "passwords").write_text("\n".join([head, *rows]) + "\n")
    (dbdir / "version").write_text("table_name(string) table_version(int)\npasswords:2\n")
    return f"text://{dbdir}"


def sipp_users(path: Path, n: int) -> Path:
    """SIPp ``-inf`` file of the digest users, read in order (field0 user, field1 the whole
    ``[authentication ...]`` keyword: SIPp 3.6 does not expand [fieldN] inside a keyword)."""
    lines = ["SEQUENTIAL"]
    lines += [f"a{i};[authentication username=a{i} password=p{i}x]" for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def ctl_socket(site: Site) -> Path:
    """Kamailio's binrpc control socket for this run."""
    return site.work / "kamailio.ctl"


def peer_argv(
    peer: str,
    site: Site,
    *,
    auth: bool,
    users: int,
    persist: bool = False,
    security: bool = False,
    wrapper: str = "",
) -> list[str]:
    """The foreground command of ``peer`` for one run in ``site.work`` (files written now).

    sipedge: ``python -m sipedge run --config``, or ``python WRAPPER run --config`` with
    ``wrapper`` (bench/registrar/mem_probe.py, bench/gc_probe.py: the same CLI, instrumented);
    with ``auth`` its users.db is put in the state dir. Kamailio: ``registrar.cfg`` with 2
    workers, 1 GiB shared memory (room for 100k bindings), the control socket in the run dir.
    """
    if peer == "sipedge":
        cfg = sipedge_config(site, auth=auth, persist=persist, security=security)
        if auth:
            sipedge_users(site.work.parent, site.realm, users, site.work / "state" / "users.db")
        main = [wrapper] if wrapper else ["-m", "sipedge"]
        return [sys.executable, *main, "run", "--config", str(cfg)]
    argv = [
        "kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-m", "1024", "-M", "16",
        "-A", f"BENCH_LISTEN=udp:{site.ip}:{site.port}",
        "-A", f'CTL_SOCK="unix:{ctl_socket(site)}"',
        "-Y", str(site.work), "-P", str(site.work / "kamailio.pid"),
    ]  # fmt: skip
    if auth:
        url = kamailio_users(site.work / "kdb", users)
        argv += ["-A", "WITH_AUTH", "-A", f'USERS_DB="{url}"']
    return argv


def wait_udp(ip: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until something listens on udp ``ip:port`` while ``proc`` stays alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if procfs.udp_bound(ip, port):
            return True
        time.sleep(0.05)
    return False


def ports_free(site: Site, ports: tuple[int, ...]) -> None:
    """Exit when one of ``ports`` is already bound on ``site.ip`` (someone else's run)."""
    for port in ports:
        if procfs.udp_bound(site.ip, port):
            raise SystemExit(f"udp {site.ip}:{port} is already in use")


def socket_drops(ip: str, port: int) -> int:
    """Datagrams dropped on the UDP socket bound to ``ip:port`` (last /proc/net/udp column)."""
    want = "".join(f"{int(b):02X}" for b in reversed(ip.split("."))) + f":{port:04X}"
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[1] == want:
                return int(cols[-1])
    return 0


def vmrss_kb(pid: int) -> int:
    """Resident set size of one process (VmRSS, kB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tree_memory_kb(root: int) -> dict[str, int]:
    """Rss and Pss (kB) summed over ``root``'s process tree, from smaps_rollup. Pss splits
    shared pages (Kamailio's shared memory) between the processes mapping them, so its sum
    counts each page once; the Rss sum counts shared pages once per process."""
    total = {"rss_kb": 0, "pss_kb": 0, "procs": 0}
    for pid in procfs.tree(procfs.snapshot(), root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                text = f.read()
        except OSError:
            continue
        total["procs"] += 1
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                total[f"{key.lower()}_kb"] += int(rest.split()[0])
    return total


def kamcmd(site: Site, *args: str) -> str:
    """Run ``kamcmd`` against this run's control socket; its stdout ("" on failure)."""
    argv = ["kamcmd", "-s", f"unix:{ctl_socket(site)}", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return done.stdout if done.returncode == 0 else ""


def kamailio_shm(site: Site) -> dict[str, int]:
    """``core.shmmem`` as integers: total, free, used, real_used, max_used, fragments."""
    out: dict[str, int] = {}
    for line in kamcmd(site, "core.shmmem").splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and value.strip().isdigit():
            out[key.strip()] = int(value)
    return out


def kamailio_stat(site: Site, name: str) -> int | None:
    """One statistic, e.g. ``usrloc:location_contacts`` (read with its whole group)."""
    group = name.partition(":")[0] + ":"
    for line in kamcmd(site, "stats.get_statistics", group).splitlines():
        key, sep, value = line.rpartition("=")
        if sep and key.strip() == name and value.strip().isdigit():
            return int(value)
    return None
