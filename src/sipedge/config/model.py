"""The typed, frozen configuration model: one pydantic model per TOML section.

To add a section (``[registrar]``, ``[nat]``, ...): subclass :class:`Section`, declare its
keys with :func:`setting` (default, one-line meaning, constraints), and add one field to
:class:`Config`. Validation messages and ``docs/config.md`` follow from the model.
"""

from __future__ import annotations

from ipaddress import ip_network
from types import MappingProxyType
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from .api import ApiConfig
from .base import Section, setting
from .ha import HaConfig
from .media import DialogConfig, MediaConfig
from .nat import NatConfig
from .values import (
    IP,
    Domain,
    HeaderText,
    Invalid,
    Items,
    Listen,
    ListenMap,
    Network,
    NextHops,
    OptionalDomain,
    OptionalNextHop,
    RouterSpec,
    non_empty,
    unique,
)

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)

Listeners = Annotated[Items[Listen], AfterValidator(non_empty), AfterValidator(unique)]


class ServerConfig(Section):
    """Listeners, identity and process-wide behaviour."""

    listen: Listeners = setting(
        (Listen("udp", "127.0.0.1", 5060), Listen("tcp", "127.0.0.1", 5060)),
        "Sockets to listen on, PROTO:HOST:PORT (IPv6 as udp:[::1]:5060).",
    )
    domains: Items[Domain] = setting((), 'Domains, besides our listener addresses, that are "us".')
    trusted: Items[Network] = setting(
        (ip_network("127.0.0.0/8"), ip_network("::1/128")),
        "Source networks that are trusted: no authentication, may relay anywhere.",
    )
    advertise: ListenMap = Field(
        default_factory=lambda: MappingProxyType({}),
        description="Public HOST[:PORT] to put in Via/Record-Route for a listener behind NAT.",
    )
    user_agent: HeaderText = setting(
        "", 'Server header on our own responses; "" (default) sends no signature.'
    )
    log_level: LogLevel = setting("warning", "Least severe log level written.")
    log_format: LogFormat = setting("text", "text (time level logger message) or json lines.")
    router: RouterSpec = setting("", 'Custom Router to load, "module:Class"; "" = default.')
    state_dir: str = setting(
        ".sipedge", "Directory for persistent state (bindings, users); created if missing."
    )
    shutdown_grace: float = setting(5.0, "Seconds to let transactions end on SIGTERM.", ge=0.0)

    @model_validator(mode="after")
    def _advertise_known_listeners(self) -> ServerConfig:
        for listen in self.advertise:
            if listen not in self.listen:
                raise Invalid(
                    f'"{listen}" is not one of server.listen',
                    "use a listener exactly as written in server.listen, or remove the entry",
                    key=f'advertise["{listen}"]',
                )
        return self


class Route(Section):
    """A static route; the first route whose conditions all match the Request-URI wins."""

    name: str = Field(min_length=1, description="Name shown in logs.", examples=["trunk"])
    domain: OptionalDomain = setting("", 'Request-URI host to match; "" = any.')
    user_prefix: str = setting("", 'Request-URI user prefix to match; "" = any.')
    to: NextHops = Field(
        description="Next hop URI; a list of URIs forks in parallel.",
        examples=["sip:192.0.2.10:5060;transport=udp"],
    )
    strip: int = setting(0, "Digits to strip from the front of the user.", ge=0)
    prefix: str = setting("", "Digits to put in front of the user (after strip).")
    tls_profile: str = setting(
        "", 'Client TLS profile ([[tls.profiles]] name) for TLS next hops; "" = the default.'
    )
    media_set: str = setting(
        "", 'rtpengine set ([[media.sets]] name) for calls on this route; "off" = no relay.'
    )


class ProxyConfig(Section):
    """RFC 3261 §16 proxy behaviour and static routing."""

    record_route: bool = setting(True, "Insert Record-Route to stay on the dialog path.")
    double_record_route: bool = setting(
        True, "Two Record-Routes when transport/interface changes.", why="RFC 5658"
    )
    max_forwards: int = setting(
        70, "Max-Forwards added to a request that has none.", why="RFC 3261 §16.6", ge=1, le=255
    )
    timer_c: float = setting(
        180.0,
        "Seconds before an unanswered INVITE branch is cancelled.",
        why="RFC 3261 §16.8",
        ge=180.0,
    )
    loop_detection: bool = setting(
        False, "Answer 482 to a request that loops back.", why="RFC 3261 §16.3"
    )
    default_upstream: OptionalNextHop = setting(
        "", 'Where requests for our own domains go (e.g. a PBX); "" = answer 404.'
    )
    routes: Items[Route] = setting((), "Static routes, [[proxy.routes]] tables, first match wins.")

    @model_validator(mode="after")
    def _route_names_unique(self) -> ProxyConfig:
        seen: set[str] = set()
        for i, route in enumerate(self.routes):
            if route.name in seen:
                raise Invalid(
                    f'route name "{route.name}" is used twice',
                    "give each route its own name",
                    key=f"routes[{i}].name",
                )
            seen.add(route.name)
        return self


class TimersConfig(Section):
    """Transaction timers, in seconds (RFC 3261 §17.1.1.1, table 4)."""

    t1: float = setting(0.5, "RTT estimate.", why="RFC 3261 §17.1.1.1", gt=0.0)
    t2: float = setting(
        4.0, "Maximum retransmit interval; at least t1.", why="RFC 3261 §17.1.2.2", gt=0.0
    )
    t4: float = setting(5.0, "Longest time a message stays in the network.", gt=0.0)

    @model_validator(mode="after")
    def _t2_not_below_t1(self) -> TimersConfig:
        if self.t2 < self.t1:
            raise Invalid(
                f"t2 ({self.t2}) is less than t1 ({self.t1})",
                f"write t2 >= {self.t1} (RFC 3261 §17.1.2.2 caps retransmits at T2)",
                key="t2",
            )
        return self


class LimitsConfig(Section):
    """Limits on received messages; a message over a limit is rejected (413/513/400)."""

    max_message_size: int = setting(65535, "Bytes in one message.", ge=1024, le=1 << 24)
    max_headers: int = setting(256, "Header fields in one message.", ge=16, le=65536)
    max_line_length: int = setting(8192, "Bytes in one start line or header line.", ge=256)
    max_vias: int = setting(70, "Via header values in one message.", ge=1, le=1024)

    @model_validator(mode="after")
    def _line_fits_message(self) -> LimitsConfig:
        if self.max_line_length > self.max_message_size:
            raise Invalid(
                f"max_line_length ({self.max_line_length}) exceeds max_message_size "
                f"({self.max_message_size})",
                f"write a value <= {self.max_message_size}",
                key="max_line_length",
            )
        return self


class TcpConfig(Section):
    """Stream connections (TCP)."""

    connect_timeout: float = setting(5.0, "Seconds to wait for an outgoing connect.", gt=0.0)
    idle_timeout: float = setting(600.0, "Seconds without traffic before closing.", gt=0.0)
    message_timeout: float = setting(
        10.0, "Seconds for a started message to complete (slowloris).", gt=0.0
    )
    max_connections_per_ip: int = setting(64, "Connections from one IP address.", ge=1)
    max_connections: int = setting(10000, "Connections in total.", ge=1)

    @model_validator(mode="after")
    def _per_ip_within_total(self) -> TcpConfig:
        if self.max_connections_per_ip > self.max_connections:
            raise Invalid(
                f"max_connections_per_ip ({self.max_connections_per_ip}) exceeds "
                f"max_connections ({self.max_connections})",
                f"write a value <= {self.max_connections}",
                key="max_connections_per_ip",
            )
        return self


class DnsConfig(Section):
    """Resolver used to locate next hops (RFC 3263)."""

    nameservers: Items[IP] = setting((), "Nameserver addresses; empty = system resolver.")
    port: int = setting(53, "Nameserver port.", ge=1, le=65535)
    timeout: float = setting(2.0, "Seconds for one lookup.", gt=0.0)
    cache_size: int = setting(10000, "Cached answers; 0 disables the cache.", ge=0)


class RegistrarConfig(Section):
    """Registrar and location service (RFC 3261 §10.3, RFC 3327, RFC 5626)."""

    enabled: bool = setting(True, "Answer REGISTER for our domains and route to bindings.")
    min_expires: int = setting(
        60, "Shortest registration accepted; shorter gets 423.", why="RFC 3261 §10.3", ge=1
    )
    max_expires: int = setting(3600, "Longest registration; longer is cut down.", ge=1)
    default_expires: int = setting(3600, "Expiry when the REGISTER names none.", ge=1)
    max_contacts: int = setting(10, "Bindings one address-of-record may hold.", ge=1)
    persist: bool = setting(
        True, "Keep bindings in SQLite under server.state_dir so a restart loses none."
    )

    @model_validator(mode="after")
    def _expiry_order(self) -> RegistrarConfig:
        if self.min_expires > self.max_expires:
            raise Invalid(
                f"min_expires ({self.min_expires}) exceeds max_expires ({self.max_expires})",
                f"write min_expires <= {self.max_expires}",
                key="min_expires",
            )
        return self


class AuthConfig(Section):
    """Digest authentication of callers we do not trust (RFC 7616, RFC 8760)."""

    realm: str = setting(
        "", 'Digest realm; "" = the first of server.domains, else the first listener host.'
    )
    users_db: str = setting(
        "", 'SQLite file of subscribers (HA1 only); "" = users.db under server.state_dir.'
    )
    nonce_lifetime: float = setting(300.0, "Seconds a nonce stays valid before stale=true.", gt=0.0)
    secret: str = setting(
        "", 'Nonce secret shared by the nodes of a cluster; "" = a random one per start.'
    )
    algorithms: Items[Literal["SHA-256", "MD5"]] = setting(
        ("SHA-256", "MD5"),
        "Digest algorithms offered, one challenge each, in this order. UAs differ: JsSIP "
        "and SIP.js answer the last (MD5 only), SIPp 3.6 the first (MD5 only), baresip "
        '1.0 fails unless all are MD5: ["MD5"] suits every one of them.',
        why="RFC 8760 §2.4",
    )

    @model_validator(mode="after")
    def _secret_long_enough(self) -> AuthConfig:
        if self.secret and len(self.secret.encode()) < 16:
            raise Invalid(
                f"secret is {len(self.secret.encode())} bytes long",
                "write at least 16 random characters, the same on every node",
                key="secret",
            )
        if not self.algorithms:
            raise Invalid("no algorithm", 'write ["SHA-256", "MD5"]', key="algorithms")
        return self


class SniCertificate(Section):
    """A certificate served to clients asking for ``server_name`` (TLS SNI)."""

    server_name: str = Field(min_length=1, description="Name or *.domain to match.")
    cert: str = Field(min_length=1, description="PEM certificate chain file.")
    key: str = Field(min_length=1, description="PEM private key file.")


class TlsProfile(Section):
    """A client TLS profile for outbound connections (e.g. mutual TLS to a trunk)."""

    name: str = Field(min_length=1, description="Profile name, used by proxy.routes.")
    ca_bundle: str = setting("", 'CA file to verify the peer; "" = the system store.')
    verify: bool = setting(True, "Verify the peer certificate and name.")
    cert: str = setting("", "Client certificate (mutual TLS).")
    key: str = setting("", "Client private key (mutual TLS).")
    server_name: str = setting("", 'Name to verify and send as SNI; "" = the target host.')


class TlsConfig(Section):
    """Certificates for tls and wss listeners and outbound TLS (RFC 3261 §26.2)."""

    cert: str = setting("", "PEM certificate chain of tls/wss listeners.")
    key: str = setting("", "PEM private key of tls/wss listeners.")
    sni: Items[SniCertificate] = setting((), "More certificates chosen by SNI.")
    min_version: Literal["1.2", "1.3"] = setting("1.2", "Oldest TLS version accepted.")
    ciphers: str = setting("", 'OpenSSL cipher list for TLS 1.2; "" = a safe default.')
    client_ca: str = setting("", "CA file to verify client certificates (mutual TLS).")
    require_client_cert: bool = setting(False, "Refuse clients without a valid certificate.")
    ca_bundle: str = setting("", 'CA file for outbound TLS; "" = the system store.')
    verify_outbound: bool = setting(True, "Verify certificates of servers we connect to.")
    profiles: Items[TlsProfile] = setting((), "Named client profiles, [[tls.profiles]].")


class WsConfig(Section):
    """WebSocket listeners (RFC 7118 over RFC 6455)."""

    origins: Items[str] = setting((), "Allowed Origin values; empty = any.")
    handshake_timeout: float = setting(5.0, "Seconds to complete the upgrade.", gt=0.0)
    ping_interval: float = setting(30.0, "Seconds between our pings; 0 = none.", ge=0.0)
    ping_timeout: float = setting(10.0, "Seconds to wait for a pong.", gt=0.0)
    max_message_size: int = setting(65535, "Bytes in one WebSocket message.", ge=1024)


class AccountConfig(Section):
    """Toll-fraud limits of one account (overrides the [security] defaults)."""

    name: str = Field(min_length=1, description="Authenticated user name.")
    international: bool = setting(False, "May call international destinations.")
    max_concurrent_calls: int = setting(10, "Calls at once; 0 = no limit.", ge=0)
    max_calls_per_minute: int = setting(20, "New calls per minute; 0 = no limit.", ge=0)


class SecurityConfig(Section):
    """Scanner rules, flood detection, bans and toll-fraud limits."""

    enabled: bool = setting(True, "Check every request before routing and authentication.")
    rules_file: str = setting("", 'Operator rule file (TOML); "" = the shipped rules only.')
    default_rules: bool = setting(True, "Apply the shipped scanner rules.")
    dry_run: bool = setting(False, "Report what the rules would block without acting.")
    hide_user_existence: bool = setting(
        True, "Untrusted callers get 404 for a known user without binding too (not 480)."
    )
    flood_window: float = setting(2.0, "Seconds per flood sampling unit (pike).", gt=0.0)
    flood_density: int = setting(
        30,
        "Requests per unit from one source before a ban (as pike); a NATed site or an SBC "
        "sending from one address needs more, or an entry in server.trusted.",
        ge=1,
    )
    flood_ban_seconds: float = setting(300.0, "Ban length for a flood.", gt=0.0)
    auth_max_failures: int = setting(5, "Failed authentications per source per window.", ge=1)
    auth_window: float = setting(60.0, "Seconds of the authentication-failure window.", gt=0.0)
    auth_ban_seconds: float = setting(900.0, "Ban length after failed authentications.", gt=0.0)
    auth_user_max_failures: int = setting(
        20, "Failed authentications for one user (from any source) per 5 minutes.", ge=1
    )
    international: bool = setting(False, "Accounts may call international destinations.")
    max_concurrent_calls: int = setting(10, "Calls at once per account; 0 = no limit.", ge=0)
    max_calls_per_minute: int = setting(20, "New calls per minute per account; 0 = no limit.", ge=0)
    extra_denied_prefixes: Items[str] = setting((), "Destination prefixes to deny as well.")
    allowed_prefixes: Items[str] = setting((), "Exceptions to the denied prefixes.")
    home_country_code: str = setting("", 'Our country code (e.g. "44"); "" = unknown.')
    accounts: Items[AccountConfig] = setting((), "Per-account limits, [[security.accounts]].")


class Config(Section):
    """The whole configuration. Every section is optional; defaults suit a loopback trial."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    timers: TimersConfig = Field(default_factory=TimersConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    tcp: TcpConfig = Field(default_factory=TcpConfig)
    dns: DnsConfig = Field(default_factory=DnsConfig)
    registrar: RegistrarConfig = Field(default_factory=RegistrarConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    ws: WsConfig = Field(default_factory=WsConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    nat: NatConfig = Field(default_factory=NatConfig)
    dialog: DialogConfig = Field(default_factory=DialogConfig)
    ha: HaConfig = Field(default_factory=HaConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)

    @model_validator(mode="after")
    def _tls_listeners_have_certificates(self) -> Config:
        secure = [str(lst) for lst in self.server.listen if lst.proto in ("tls", "wss")]
        if secure and not (self.tls.cert and self.tls.key):
            raise Invalid(
                f"{secure[0]} needs a certificate but tls.cert/tls.key are not set",
                'set tls.cert and tls.key (for a test: "sipedge cert selfsigned --out-dir DIR")',
                key="tls.cert",
            )
        sets = {"", "off", "default", *(s.name for s in self.media.sets)}
        for i, route in enumerate(self.proxy.routes):
            if route.media_set not in sets:
                raise Invalid(
                    f'media_set "{route.media_set}" is not defined',
                    'add a [[media.sets]] table with that name, or use "" or "off"',
                    key=f"proxy.routes[{i}].media_set",
                )
        names = {p.name for p in self.tls.profiles}
        for i, route in enumerate(self.proxy.routes):
            if route.tls_profile and route.tls_profile not in names:
                raise Invalid(
                    f'tls_profile "{route.tls_profile}" is not defined',
                    "add a [[tls.profiles]] table with that name",
                    key=f"proxy.routes[{i}].tls_profile",
                )
        return self

    @classmethod
    def default(cls) -> Config:
        """The embedded defaults (what an empty TOML file gives)."""
        return cls()
