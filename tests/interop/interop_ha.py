"""A two-node Pacemaker/Corosync cluster of sipedge in network namespaces, for the HA test.

Topology (every address exists only inside the namespaces this module creates)::

    <tag>sw   bridge br0
    <tag>n1   node 1, 10.99.0.1   corosync + pacemakerd (+ sipedge when active)
    <tag>n2   node 2, 10.99.0.2   the same
    <tag>r    Redis,  10.99.0.20 (and rtpengine, see interop_ha_media, when media is on)
    <tag>c    clients, 10.99.0.10 (trusted) and 10.99.0.11 (a source to ban)
    VIP       10.99.0.100/24 on the active node's eth0 (ocf:heartbeat:IPaddr2)

Each node runs in its own mount and UTS namespace too (``unshare -m -u``): private
``/run``, ``/dev/shm``, ``/var/lib/pacemaker``, ``/var/lib/corosync`` and
``/var/log/pacemaker``, and ``/usr/lib/ocf/resource.d`` with the provider directory
``sipedge`` added (the agent installed by ``sipedge ha install-agent --prefix``), so
nothing on the host is changed. The CIB is seeded
with ``stonith-enabled=false``, ``no-quorum-policy=ignore``, ``dc-deadtime=2s`` and group
``g_edge`` = IPaddr2 VIP, then sipedge (ocf:sipedge:sipedge) on the VIP.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

CLIENT = Path(__file__).resolve().parent / "interop_ha_client.py"
OCF = Path("/usr/lib/ocf/resource.d")
NET = "10.99.0"
VIP = f"{NET}.100"
CLIENT_IP, ATTACKER_IP, REDIS_IP = f"{NET}.10", f"{NET}.11", f"{NET}.20"
SIP_PORT = 5060
TOOLS: tuple[str, ...] = (
    "ip",
    "unshare",
    "nsenter",
    "corosync",
    "corosync-cfgtool",
    "pacemakerd",
    "cibadmin",
)
TOOLS += ("crm_attribute", "crm_standby", "redis-server", "sipp")


def missing_prerequisite() -> str | None:
    """Why the HA test cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces)"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (pacemaker corosync redis-server sip-tester)"
    if not (OCF / "heartbeat" / "IPaddr2").exists():
        return "ocf:heartbeat:IPaddr2 is missing (Debian package resource-agents)"
    probe = f"hap{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "cannot create network namespaces here"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def sh(*cmd: str, check: bool = True, timeout: float = 20) -> str:
    """Run a command; its stdout (raises with stderr on failure when ``check``)."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def corosync_conf() -> str:
    nodes = "".join(
        f"  node {{\n    ring0_addr: {NET}.{n}\n    name: node{n}\n    nodeid: {n}\n  }}\n"
        for n in (1, 2)
    )
    return (
        "totem {\n  version: 2\n  cluster_name: sipedge\n  transport: knet\n"
        "  crypto_cipher: none\n  crypto_hash: none\n  token: 2000\n}\n"
        f"nodelist {{\n{nodes}}}\n"
        "quorum {\n  provider: corosync_votequorum\n  two_node: 1\n}\n"
        "logging {\n  to_stderr: yes\n  to_syslog: no\n  to_logfile: no\n}\n"
    )


def sipedge_toml() -> str:
    """Both nodes: listen on the VIP, registrations/dialogs/bans in Redis."""
    return f"""\
[server]
listen = ["udp:{VIP}:{SIP_PORT}", "tcp:{VIP}:{SIP_PORT}"]
trusted = ["{CLIENT_IP}/32", "{NET}.1/32", "{NET}.2/32", "{VIP}/32"]
log_level = "info"
shutdown_grace = 1.0

[registrar]
persist = false

[auth]
secret = "shared-by-both-nodes-0123456789"

[nat]
# 10.99.0.10 is a private address, so the clients count as NATed: the Record-Route of
# their calls carries a flow token, which the other node must accept after a failover.
token_secret = "flow-tokens-of-both-nodes-0123"
keepalive_max_lost = 0

[security]
flood_density = 10
flood_ban_seconds = 600

[ha]
backend = "redis"
redis_url = "redis://{REDIS_IP}:6379/0"
timeout = 1.0
{_api_off()}"""


def _api_off() -> str:
    from sipedge.config import Config

    return "\n[api]\nenabled = false\n" if "api" in Config.model_fields else ""


def group_xml(config: Path) -> str:
    def nv(prim: str, name: str, value: str) -> str:
        return f'<nvpair id="{prim}-{name}" name="{name}" value="{value}"/>'

    def ops(prim: str, start: str) -> str:
        return (
            f'<operations><op id="{prim}-mon" name="monitor" interval="2s" timeout="10s"/>'
            f'<op id="{prim}-start" name="start" interval="0" timeout="{start}"/>'
            f'<op id="{prim}-stop" name="stop" interval="0" timeout="15s"/></operations>'
        )

    vip = (
        '<primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">'
        f'<instance_attributes id="vip-ia">{nv("vip", "ip", VIP)}'
        f"{nv('vip', 'cidr_netmask', '24')}{nv('vip', 'nic', 'eth0')}</instance_attributes>"
        f"{ops('vip', '20s')}</primitive>"
    )
    edge_params = {
        "config": str(config),
        "python": sys.executable,
        "ip": VIP,
        "port": str(SIP_PORT),
        "logfile": "/var/log/pacemaker/sipedge.log",  # per node (bind mount)
        "workdir": "/var/log/pacemaker",
    }
    attrs = "".join(nv("edge", k, v) for k, v in edge_params.items())
    edge = (
        '<primitive id="edge" class="ocf" provider="sipedge" type="sipedge">'
        f'<instance_attributes id="edge-ia">{attrs}</instance_attributes>'
        f"{ops('edge', '30s')}</primitive>"
    )
    # Stickiness: once moved the group stays; a node coming back does not take it back.
    meta = '<meta_attributes id="g-meta">' + nv("g", "resource-stickiness", "100")
    return f'<group id="g_edge">{meta}</meta_attributes>{vip}{edge}</group>'


NODE_SCRIPT = """\
set -e
N=$1; D=$2
hostname node$N
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/resource-agents /run/crm /run/corosync
mount --bind $D/pacemaker /var/lib/pacemaker
mount --bind $D/corosync /var/lib/corosync
mount --bind $D/log /var/log/pacemaker
for p in heartbeat pacemaker; do mount --bind {ocf}/$p $D/ocf/$p; done
mount --rbind $D/ocf {ocf}
corosync -f -c $D/../corosync.conf >$D/log/corosync.log 2>&1 &
i=0
until corosync-cfgtool -s >/dev/null 2>&1; do
  i=$((i+1)); [ $i -lt 100 ] || exit 3; sleep 0.1
done
export PCMK_logfile=/var/log/pacemaker/pacemaker.log PCMK_logfacility=none
exec pacemakerd
"""


class HaLab:
    """The namespaces, Redis and the two cluster nodes of one test run."""

    def __init__(self, workdir: Path, extra_toml: str = "") -> None:
        self.dir = workdir
        self.extra_toml = extra_toml  # appended to both nodes' sipedge.toml
        tag = f"h{os.getpid() % 100000}"
        self.sw, self.client, self.redis = f"{tag}sw", f"{tag}c", f"{tag}r"
        self.nodes = {1: f"{tag}n1", 2: f"{tag}n2"}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.made: list[str] = []

    # -- network ---------------------------------------------------------------------------
    def build_network(self) -> None:
        sh("ip", "netns", "add", self.sw)
        self.made.append(self.sw)
        sh("ip", "-n", self.sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.sw, "link", "set", "br0", "up")
        members = {**{f"{NET}.{n}": ns for n, ns in self.nodes.items()}}
        members |= {CLIENT_IP: self.client, REDIS_IP: self.redis}
        for ip, ns in members.items():
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            veth = f"v-{ns}"
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "netns", self.sw)
            sh("ip", "-n", self.sw, "link", "set", veth, "master", "br0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", self.client, "addr", "add", f"{ATTACKER_IP}/24", "dev", "eth0")

    def spawn(self, ns: str, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def start_redis(self) -> None:
        args = ["redis-server", "--bind", REDIS_IP, "--port", "6379", "--protected-mode", "no"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self.spawn(self.redis, args, self.dir / "redis.log")

    # -- cluster ---------------------------------------------------------------------------
    def prepare_nodes(self) -> None:
        (self.dir / "corosync.conf").write_text(corosync_conf())
        config = self.dir / "sipedge.toml"
        config.write_text(sipedge_toml() + self.extra_toml)
        cib = self._seed_cib(config)
        for n in self.nodes:
            d = self.node_dir(n)
            for sub in ("pacemaker/cib", "pacemaker/pengine", "pacemaker/blackbox"):
                (d / sub).mkdir(parents=True)
            for sub in ("pacemaker/cores", "corosync", "log", "ocf/heartbeat"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            (d / "ocf" / "pacemaker").mkdir(parents=True)
            install = [sys.executable, "-m", "sipedge", "ha", "install-agent"]
            sh(*install, "--prefix", str(d / "ocf"))  # -> ocf/sipedge/sipedge
            shutil.copy(cib, d / "pacemaker" / "cib" / "cib.xml")
            for path in [d / "pacemaker", *(d / "pacemaker").iterdir(), d / "log"]:
                shutil.chown(path, "hacluster", "haclient")
                path.chmod(0o750 if path.is_dir() else 0o600)
            shutil.chown(d / "pacemaker" / "cib" / "cib.xml", "hacluster", "haclient")
            (d / "pacemaker" / "cib" / "cib.xml").chmod(0o600)
            (d / "log").chmod(0o770)

    def _seed_cib(self, config: Path) -> Path:
        cib = self.dir / "cib.xml"
        cib.write_text(sh("cibadmin", "--empty"))
        env = dict(os.environ, CIB_file=str(cib))
        for name, value in (
            ("stonith-enabled", "false"),
            ("no-quorum-policy", "ignore"),
            ("dc-deadtime", "2s"),
        ):
            cmd = ["crm_attribute", "-t", "crm_config", "-n", name, "-v", value]
            subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=20)
        add = ["cibadmin", "-C", "-o", "resources", "-X", group_xml(config)]
        subprocess.run(add, env=env, check=True, capture_output=True, timeout=20)
        return cib

    def node_dir(self, n: int) -> Path:
        return self.dir / f"node{n}"

    def start_nodes(self) -> None:
        script = self.dir / "node.sh"
        script.write_text(NODE_SCRIPT.format(ocf=OCF))
        for n, ns in self.nodes.items():
            cmd = ["unshare", "-m", "-u", "--propagation", "private"]
            cmd += ["sh", str(script), str(n), str(self.node_dir(n))]
            self.spawn(ns, cmd, self.node_dir(n) / "node.log")

    def holder(self) -> int | None:
        """The node whose eth0 is up and carries the VIP (a crashed node keeps the address
        on its downed link: there is no fencing here)."""
        for n, ns in self.nodes.items():
            shown = sh("ip", "-n", ns, "addr", "show", "dev", "eth0", check=False)
            if f"inet {VIP}/" in shown and "state UP" in shown:
                return n
        return None

    def crm(self, n: int, *cmd: str) -> str:
        """Run a Pacemaker tool inside node ``n`` (its IPC lives in its namespaces)."""
        for pid in sh("ip", "netns", "pids", self.nodes[n], check=False).split():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "pacemakerd":
                    return sh("nsenter", "-t", pid, "-m", "-n", "-u", *cmd)
        raise RuntimeError(f"no pacemakerd on node{n}")

    def wait_holder(self, n: int, timeout: float) -> bool:
        """Wait until node ``n`` holds the VIP."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.holder() == n:
                return True
            time.sleep(0.1)
        return False

    def crash(self, n: int) -> None:
        """Kill every process of node ``n`` and take its link down (no fencing here)."""
        ns = self.nodes[n]
        self._kill_all(ns)
        sh("ip", "-n", ns, "link", "set", "eth0", "down")

    # -- clients ---------------------------------------------------------------------------
    def client_cmd(self, *args: str, timeout: float = 40) -> str:
        """Run interop_ha_client.py in the client namespace; its stdout."""
        cmd = ["ip", "netns", "exec", self.client, sys.executable, str(CLIENT), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: rc={done.returncode}\n{done.stderr}")
        return done.stdout

    def sipp(self, name: str, args: list[str]) -> NsSipp:
        """Start SIPp in the client namespace."""
        return NsSipp(self, name, args)

    # -- reports and clean-up --------------------------------------------------------------
    def report(self, tail: int = 2500) -> str:
        parts = []
        for n in self.nodes:
            for log in ("sipedge.log", "node.log", "corosync.log"):
                path = self.node_dir(n) / ("node.log" if log == "node.log" else f"log/{log}")
                with contextlib.suppress(OSError):
                    parts.append(f"--- node{n} {log}:\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def _kill_all(self, ns: str) -> None:
        pids = sh("ip", "netns", "pids", ns, check=False).split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)

    def close(self) -> None:
        """Kill everything started, delete every namespace (safe to call twice)."""
        for ns in reversed(self.made):
            self._kill_all(ns)
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        time.sleep(0.2)
        for ns in reversed(self.made):
            self._kill_all(ns)
            sh("ip", "netns", "del", ns, check=False)
        self.made.clear()


class NsSipp:
    """One SIPp process in the client namespace, logging into its own directory."""

    def __init__(self, lab: HaLab, name: str, args: list[str]) -> None:
        self.name = name
        self.logdir = lab.dir / "sipp" / name
        self.logdir.mkdir(parents=True)
        logs = ["-trace_err", "-error_file", str(self.logdir / "errors.log")]
        logs += ["-trace_msg", "-message_file", str(self.logdir / "messages.log")]
        self.proc = lab.spawn(lab.client, ["sipp", *args, *logs], self.logdir / "output.txt")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=5)

    def read(self, name: str) -> str:
        try:
            return (self.logdir / name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def report(self) -> str:
        return (
            f"--- sipp {self.name} rc={self.proc.poll()}\n{self.read('output.txt')[-1500:]}\n"
            f"{self.read('errors.log')[-2000:]}"
        )


REGISTER_XML = """\
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="sipedge ha register">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[pid]r[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Expires: 300
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""
