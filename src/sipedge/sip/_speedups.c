/* Optional C accelerator of sipedge.sip.parser (RFC 3261 §7, §18.3, §25).
 *
 * scan() recognises the common, well-formed shape of a SIP message and hands back
 * what the Python side needs: the start-line parts, the eagerly read fields (Via,
 * Route, Call-ID, CSeq, From/To with their tags, Max-Forwards, Content-Length) and
 * the body. It never raises on bad input: whenever the message is unusual (folded
 * lines, bare CR or LF, non-ASCII octets, a value outside the fast grammar) or
 * possibly malformed, it returns None and the pure-Python parser decides, so both
 * paths give the same results and the same ParseError.
 *
 * fields() splits the header block of a message scan() accepted into Field objects;
 * the parser calls it lazily, on the first access to Message.fields.
 *
 * Every index is checked against the buffer length before it is read.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* ------------------------------------------------------------------ classes */

enum {
    C_TOKEN = 1,   /* RFC 3261 §25.1 token */
    C_ALNUM = 2,
    C_DIGIT = 4,
    C_TEXT = 8,    /* octets the fast path accepts in a header block: HTAB, 0x20-0x7e */
    C_VPARAM = 16, /* Via generic-param value: token, ':', '[', ']' */
    C_SCHEME = 32, /* URI scheme after the first letter: ALPHA / DIGIT / "+" / "-" / "." */
    C_URI = 64,    /* inside <...>: visible ASCII except '<', '>', '"' */
    C_ALPHA = 128,
};

static unsigned char cls[256];

static void
init_classes(void)
{
    const char *extra = "-.!%*_+`'~";
    for (int c = 0; c < 256; c++) {
        unsigned char f = 0;
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        int dig = c >= '0' && c <= '9';
        if (alpha)
            f |= C_ALPHA;
        if (dig)
            f |= C_DIGIT;
        if (alpha || dig)
            f |= C_ALNUM | C_TOKEN | C_SCHEME;
        if (c != 0 && strchr(extra, c) != NULL)
            f |= C_TOKEN;
        if (c == '+' || c == '-' || c == '.')
            f |= C_SCHEME;
        if (c == '\t' || (c >= 0x20 && c < 0x7f))
            f |= C_TEXT;
        if ((f & C_TOKEN) || c == ':' || c == '[' || c == ']')
            f |= C_VPARAM;
        if (c > 0x20 && c < 0x7f && c != '<' && c != '>' && c != '"')
            f |= C_URI;
        cls[c] = f;
    }
}

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

static int
lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Case-insensitive equality of s[0:n] with the lower-case literal lit. */
static int
ieq(const char *s, Py_ssize_t n, const char *lit)
{
    Py_ssize_t m = (Py_ssize_t)strlen(lit);
    if (n != m)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != lit[i])
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ strings */

/* Immutable strings that recur in nearly every message, made once at import. */
typedef struct {
    const char *text;
    Py_ssize_t len;
    PyObject *str;
} cached;

static cached WORDS[] = {
    {"SIP/2.0"}, {"INVITE"}, {"ACK"}, {"BYE"}, {"CANCEL"}, {"OPTIONS"}, {"REGISTER"},
    {"PRACK"}, {"SUBSCRIBE"}, {"NOTIFY"}, {"PUBLISH"}, {"INFO"}, {"REFER"}, {"MESSAGE"},
    {"UPDATE"}, {"UDP"}, {"TCP"}, {"TLS"}, {"SCTP"}, {"WS"}, {"WSS"}, {"OK"}, {"Trying"},
    {"Ringing"}, {"Session Progress"}, {NULL},
};

/* Header keys (RFC 3261 §7.3.1, §7.3.3): lower-case names, compact forms expanded. */
static cached KEYS[] = {
    {"via"}, {"from"}, {"to"}, {"call-id"}, {"cseq"}, {"max-forwards"}, {"contact"},
    {"content-type"}, {"content-length"}, {"user-agent"}, {"server"}, {"allow"},
    {"supported"}, {"require"}, {"proxy-require"}, {"route"}, {"record-route"}, {"expires"},
    {"min-expires"}, {"authorization"}, {"proxy-authorization"}, {"www-authenticate"},
    {"proxy-authenticate"}, {"accept"}, {"date"}, {"subject"}, {"event"}, {"allow-events"},
    {"path"}, {"session-expires"}, {"min-se"}, {"reason"}, {"p-asserted-identity"},
    {"privacy"}, {"rack"}, {"rseq"}, {"refer-to"}, {"referred-by"}, {"unsupported"},
    {"warning"}, {"organization"}, {"content-disposition"}, {"timestamp"},
    {"content-encoding"}, {"target-dialog"}, {"accept-contact"}, {"reject-contact"},
    {"request-disposition"}, {NULL},
};

/* Compact forms, as headers.COMPACT_FORMS: letter and the index of its key in KEYS. */
static const char COMPACT[] = "vftimlckseourbxyajd";
static const int COMPACT_KEY[] = {0, 1, 2, 3, 6, 8, 7, 12, 25, 43, 26, 27, 36, 37, 29, 44, 45,
                                  46, 47};

/* Header names as usually spelled (kept exactly as written), with their keys. */
typedef struct {
    const char *text;
    const char *key;
    Py_ssize_t len;
    PyObject *str;
    PyObject *keystr;
} spelling;

static spelling NAMES[] = {
    {"Via", "via"}, {"From", "from"}, {"To", "to"}, {"Call-ID", "call-id"}, {"CSeq", "cseq"},
    {"Max-Forwards", "max-forwards"}, {"Contact", "contact"}, {"Content-Type", "content-type"},
    {"Content-Length", "content-length"}, {"User-Agent", "user-agent"}, {"Server", "server"},
    {"Allow", "allow"}, {"Supported", "supported"}, {"Require", "require"},
    {"Proxy-Require", "proxy-require"}, {"Route", "route"}, {"Record-Route", "record-route"},
    {"Expires", "expires"}, {"Min-Expires", "min-expires"}, {"Authorization", "authorization"},
    {"Proxy-Authorization", "proxy-authorization"}, {"WWW-Authenticate", "www-authenticate"},
    {"Proxy-Authenticate", "proxy-authenticate"}, {"Accept", "accept"}, {"Date", "date"},
    {"Subject", "subject"}, {"Event", "event"}, {"Allow-Events", "allow-events"},
    {"Path", "path"}, {"Session-Expires", "session-expires"}, {"Min-SE", "min-se"},
    {"Reason", "reason"}, {"P-Asserted-Identity", "p-asserted-identity"},
    {"Privacy", "privacy"}, {"RAck", "rack"}, {"RSeq", "rseq"}, {"Call-Id", "call-id"},
    {"Cseq", "cseq"}, {"v", "via"}, {"f", "from"}, {"t", "to"}, {"i", "call-id"},
    {"m", "contact"}, {"l", "content-length"}, {"c", "content-type"}, {"k", "supported"},
    {NULL, NULL},
};

static int
init_cache(cached *t)
{
    for (; t->text != NULL; t++) {
        t->len = (Py_ssize_t)strlen(t->text);
        if (t->str == NULL && (t->str = PyUnicode_InternFromString(t->text)) == NULL)
            return -1;
    }
    return 0;
}

/* The cached string equal to s[0:n] (ignoring ASCII case when icase), or NULL. */
static PyObject *
lookup(const cached *t, const char *s, Py_ssize_t n, int icase)
{
    for (; t->text != NULL; t++) {
        if (t->len != n)
            continue;
        if (icase ? ieq(s, n, t->text) : memcmp(s, t->text, (size_t)n) == 0)
            return Py_NewRef(t->str);
    }
    return NULL;
}

static int
init_names(void)
{
    for (spelling *t = NAMES; t->text != NULL; t++) {
        t->len = (Py_ssize_t)strlen(t->text);
        if (t->str == NULL && (t->str = PyUnicode_InternFromString(t->text)) == NULL)
            return -1;
        for (cached *k = KEYS; t->keystr == NULL && k->text != NULL; k++)
            if (strcmp(k->text, t->key) == 0)
                t->keystr = k->str;
        if (t->keystr == NULL) {
            PyErr_SetString(PyExc_SystemError, "header name without a key");
            return -1;
        }
    }
    return 0;
}

/* A str of ASCII octets (the caller checked they are all < 0x80). */
static PyObject *
ascii(const char *s, Py_ssize_t n)
{
    PyObject *o = PyUnicode_New(n, 127);
    if (o != NULL && n > 0)
        memcpy(PyUnicode_1BYTE_DATA(o), s, (size_t)n);
    return o;
}

/* Like ascii() but returns a shared string for the common words. */
static PyObject *
ascii_common(const char *s, Py_ssize_t n)
{
    PyObject *o = lookup(WORDS, s, n, 0);
    return o != NULL ? o : ascii(s, n);
}

/* The key of header name s[0:n] (a valid token): lower-case, compact form expanded. */
static PyObject *
header_key(const char *s, Py_ssize_t n)
{
    if (n == 1) {
        const char *p = strchr(COMPACT, lower((unsigned char)s[0]));
        if (p != NULL && *p != '\0')
            return Py_NewRef(KEYS[COMPACT_KEY[p - COMPACT]].str);
    }
    PyObject *o = lookup(KEYS, s, n, 1);
    if (o != NULL)
        return o;
    o = PyUnicode_New(n, 127);
    if (o == NULL)
        return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(o);
    for (Py_ssize_t i = 0; i < n; i++)
        d[i] = (Py_UCS1)lower((unsigned char)s[i]);
    return o;
}

/* ------------------------------------------------------------------ numbers */

/* 1*DIGIT with leading zeros allowed and at most max_value (hdr/cseq.parse_uint).
 * Returns the value, or -1 when the text is not such a number. */
static long long
uint_value(const char *s, Py_ssize_t n, long long max_value)
{
    if (n == 0)
        return -1;
    Py_ssize_t i = 0;
    for (Py_ssize_t k = 0; k < n; k++)
        if (!IS(s[k], C_DIGIT))
            return -1;
    while (i < n - 1 && s[i] == '0')
        i++;
    if (n - i > 10)
        return -1;
    long long v = 0;
    for (; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v > max_value ? -1 : v;
}

/* ------------------------------------------------------------------ Via */

/* label = 1*alnum *( 1*"-" 1*alnum ) (possessive, as uri.HOSTNAME). */
static int
label(const char *s, Py_ssize_t n, Py_ssize_t *pi)
{
    Py_ssize_t i = *pi;
    if (i >= n || !IS(s[i], C_ALNUM))
        return 0;
    while (i < n && IS(s[i], C_ALNUM))
        i++;
    for (;;) {
        Py_ssize_t j = i;
        while (j < n && s[j] == '-')
            j++;
        if (j == i || j >= n || !IS(s[j], C_ALNUM))
            break;
        i = j;
        while (i < n && IS(s[i], C_ALNUM))
            i++;
    }
    *pi = i;
    return 1;
}

/* Check the Via parameters whose values the grammar constrains (RFC 3261 §20.42,
 * RFC 3581) more strictly than hdr/via._check_params: every rport or ttl with a value
 * must be a small number, every branch must have a value. */
static int
via_params_ok(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        Py_ssize_t n0 = ++i; /* skip ';' */
        while (i < n && s[i] != '=' && s[i] != ';')
            i++;
        Py_ssize_t n1 = i, v0 = -1, v1 = -1;
        if (i < n && s[i] == '=') {
            v0 = ++i;
            while (i < n && s[i] != ';')
                i++;
            v1 = i;
        }
        const char *nm = s + n0;
        Py_ssize_t nl = n1 - n0;
        if (ieq(nm, nl, "branch") && v0 < 0)
            return 0;
        int rport = ieq(nm, nl, "rport");
        if ((rport || ieq(nm, nl, "ttl")) && v0 >= 0) {
            if (v1 - v0 > 5 || uint_value(s + v0, v1 - v0, rport ? 65535 : 255) < 0)
                return 0;
        }
    }
    return 1;
}

/* One via-parm in the canonical form of hdr/via._FAST_RE:
 * "SIP/2.0/" token SP hostname [":" 1*5DIGIT] *(";" token ["=" value]).
 * Appends (TRANSPORT, host, port or None, params) to out. Returns 1 when done, 0 when
 * the Python parser must decide, -1 on a Python error. */
static int
via_one(const char *s, Py_ssize_t n, PyObject *out)
{
    if (n < 8 || memcmp(s, "SIP/2.0/", 8) != 0)
        return 0;
    Py_ssize_t i = 8, t0 = 8;
    while (i < n && IS(s[i], C_TOKEN))
        i++;
    Py_ssize_t t1 = i;
    if (t1 == t0 || i >= n || s[i] != ' ')
        return 0;
    Py_ssize_t h0 = ++i;
    if (!label(s, n, &i))
        return 0; /* an IPv6 reference or anything else: Python */
    while (i < n && s[i] == '.') {
        Py_ssize_t j = i + 1;
        if (!label(s, n, &j))
            break;
        i = j;
    }
    if (i < n && s[i] == '.')
        i++;
    Py_ssize_t h1 = i;
    long port = -1;
    if (i < n && s[i] == ':') {
        Py_ssize_t p0 = ++i;
        while (i < n && IS(s[i], C_DIGIT))
            i++;
        if (i == p0 || i - p0 > 5)
            return 0;
        port = (long)uint_value(s + p0, i - p0, 65535);
        if (port < 0)
            return 0;
    }
    Py_ssize_t q0 = i;
    while (i < n) {
        if (s[i] != ';')
            return 0;
        Py_ssize_t k = ++i;
        while (i < n && IS(s[i], C_TOKEN))
            i++;
        if (i == k)
            return 0;
        if (i < n && s[i] == '=') {
            k = ++i;
            while (i < n && IS(s[i], C_VPARAM))
                i++;
            if (i == k)
                return 0;
        }
    }
    if (!via_params_ok(s + q0, n - q0))
        return 0;
    char up[16];
    PyObject *transport;
    if (t1 - t0 <= (Py_ssize_t)sizeof(up)) {
        for (Py_ssize_t k = t0; k < t1; k++)
            up[k - t0] = (char)((s[k] >= 'a' && s[k] <= 'z') ? s[k] - 32 : s[k]);
        transport = ascii_common(up, t1 - t0);
    }
    else {
        transport = PyUnicode_New(t1 - t0, 127);
        if (transport != NULL) {
            Py_UCS1 *d = PyUnicode_1BYTE_DATA(transport);
            for (Py_ssize_t k = t0; k < t1; k++)
                d[k - t0] = (Py_UCS1)((s[k] >= 'a' && s[k] <= 'z') ? s[k] - 32 : s[k]);
        }
    }
    if (transport == NULL)
        return -1;
    PyObject *host = ascii(s + h0, h1 - h0);
    PyObject *po = port < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(port);
    PyObject *params = ascii(s + q0, n - q0);
    PyObject *t = NULL;
    if (host != NULL && po != NULL && params != NULL)
        t = PyTuple_Pack(4, transport, host, po, params);
    Py_DECREF(transport);
    Py_XDECREF(host);
    Py_XDECREF(po);
    Py_XDECREF(params);
    if (t == NULL)
        return -1;
    int rc = PyList_Append(out, t);
    Py_DECREF(t);
    return rc < 0 ? -1 : 1;
}

/* A Via value (hdr/via.parse_via): one via-parm or a comma-separated list. */
static int
via_value(const char *s, Py_ssize_t n, PyObject *out)
{
    if (memchr(s, '"', (size_t)n) != NULL || memchr(s, '<', (size_t)n) != NULL)
        return 0;
    Py_ssize_t i = 0;
    for (;;) {
        Py_ssize_t j = i;
        while (j < n && s[j] != ',')
            j++;
        Py_ssize_t a = i, b = j;
        while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
        int rc = via_one(s + a, b - a, out);
        if (rc <= 0)
            return rc;
        if (j >= n)
            return 1;
        i = j + 1;
    }
}

/* ------------------------------------------------------------------ From / To */

/* The tag of a From/To value when it has one of the usual shapes that
 * message.quick_tag accepts with its fast regex: [display-name] <URI> *(";" token
 * ["=" token]), or scheme ":" addr-spec *(";" token ["=" token]). Sets *tag to a new
 * reference (a str, or None when there is no tag) and returns 1; returns 0 when the
 * Python code must decide, -1 on a Python error. */
static int
name_addr_tag(const char *s, Py_ssize_t n, PyObject **tag)
{
    Py_ssize_t i = 0;
    *tag = NULL;
    if (n == 0)
        return 0;
    if (s[0] == '"') {
        i = 1;
        while (i < n && s[i] != '"' && s[i] != '\\')
            i++;
        if (i >= n || s[i] != '"')
            return 0;
        i++;
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i >= n || s[i] != '<')
            return 0;
    }
    else if (s[0] != '<') {
        Py_ssize_t j = 0;
        while (j < n && (IS(s[j], C_TOKEN) || s[j] == ' ' || s[j] == '\t'))
            j++;
        if (j < n && s[j] == '<' && IS(s[0], C_TOKEN)) {
            i = j; /* display-name = token *(LWS token) */
        }
        else {
            /* addr-spec: scheme ":" 1*(visible except <>";,? ) */
            if (!IS(s[0], C_ALPHA))
                return 0;
            i = 1;
            while (i < n && IS(s[i], C_SCHEME))
                i++;
            if (i >= n || s[i] != ':')
                return 0;
            Py_ssize_t u0 = ++i;
            while (i < n && IS(s[i], C_URI) && s[i] != ';' && s[i] != ',' && s[i] != '?')
                i++;
            if (i == u0)
                return 0;
            goto params;
        }
    }
    /* s[i] == '<': "<" scheme ":" 1*(visible except <>") ">" */
    i++;
    if (i >= n || !IS(s[i], C_ALPHA))
        return 0;
    while (i < n && IS(s[i], C_SCHEME))
        i++;
    if (i >= n || s[i] != ':')
        return 0;
    {
        Py_ssize_t u0 = ++i;
        while (i < n && IS(s[i], C_URI))
            i++;
        if (i == u0 || i >= n || s[i] != '>')
            return 0;
        i++;
    }
params:;
    Py_ssize_t t0 = -1, t1 = -1;
    while (i < n) {
        if (s[i] != ';')
            return 0;
        Py_ssize_t k = ++i;
        while (i < n && IS(s[i], C_TOKEN))
            i++;
        if (i == k)
            return 0;
        Py_ssize_t nk = i - k;
        if (i < n && s[i] == '=') {
            Py_ssize_t v = ++i;
            while (i < n && IS(s[i], C_TOKEN))
                i++;
            if (i == v)
                return 0;
            if (t0 < 0 && ieq(s + k, nk, "tag")) {
                t0 = v;
                t1 = i;
            }
        }
    }
    *tag = t0 < 0 ? Py_NewRef(Py_None) : ascii(s + t0, t1 - t0);
    return *tag == NULL ? -1 : 1;
}

/* ------------------------------------------------------------------ scan */

enum { K_OTHER, K_VIA, K_ROUTE, K_CALLID, K_CSEQ, K_FROM, K_TO, K_MAXFWD, K_CLEN };
#define N_SINGLE 9

static int
eager_kind(const char *s, Py_ssize_t n)
{
    if (n == 1) {
        switch (lower((unsigned char)s[0])) {
        case 'v': return K_VIA;
        case 'i': return K_CALLID;
        case 'f': return K_FROM;
        case 't': return K_TO;
        case 'l': return K_CLEN;
        default: return K_OTHER;
        }
    }
    switch (n) {
    case 2: return ieq(s, n, "to") ? K_TO : K_OTHER;
    case 3: return ieq(s, n, "via") ? K_VIA : K_OTHER;
    case 4: return ieq(s, n, "from") ? K_FROM : ieq(s, n, "cseq") ? K_CSEQ : K_OTHER;
    case 5: return ieq(s, n, "route") ? K_ROUTE : K_OTHER;
    case 7: return ieq(s, n, "call-id") ? K_CALLID : K_OTHER;
    case 12: return ieq(s, n, "max-forwards") ? K_MAXFWD : K_OTHER;
    case 14: return ieq(s, n, "content-length") ? K_CLEN : K_OTHER;
    default: return K_OTHER;
    }
}

/* One header line s[0:n]: colon position and the value bounds (value stripped of SP and
 * HTAB). Returns the name length (without trailing LWS) or 0 when not a plain field. */
static Py_ssize_t
split_line(const char *s, Py_ssize_t n, Py_ssize_t *colon, Py_ssize_t *v0, Py_ssize_t *v1)
{
    const char *c = memchr(s, ':', (size_t)n);
    if (c == NULL || c == s)
        return 0;
    Py_ssize_t k = c - s, e = k;
    while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    if (e == 0)
        return 0;
    for (Py_ssize_t i = 0; i < e; i++)
        if (!IS(s[i], C_TOKEN))
            return 0;
    Py_ssize_t a = k + 1, b = n;
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    *colon = k;
    *v0 = a;
    *v1 = b;
    return e;
}

/* End of the header line starting at i (index of its CR), or -1 when a line holds an
 * octet outside the fast path (control, non-ASCII, CR without LF) or the data ends. */
static Py_ssize_t
line_end(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    /* Eight octets at a time while all are visible ASCII or SP (0x20-0x7e). */
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t below = (w - 0x20 * ones) & ~w & highs; /* some octet < 0x20 */
        uint64_t above = ((w + ones) | w) & highs;       /* some octet >= 0x7f */
        if (below | above)
            break;
        i += 8;
    }
    while (i < n && IS(s[i], C_TEXT))
        i++;
    if (i + 1 < n && s[i] == '\r' && s[i + 1] == '\n')
        return i;
    return -1;
}

/* Request line "Method SP Request-URI SP SIP-Version" (RFC 3261 §7.1) or status line
 * "SIP-Version SP Status-Code SP Reason-Phrase" (§7.2), as parser._start_line. Fills
 * out[] with the version, the method or reason phrase and the Request-URI or "", and
 * *status (0 for a request); returns 1 when done, 0 for Python, -1 on error. */
static int
start_line(const char *s, Py_ssize_t n, PyObject *out[3], long *status)
{
    const char *p = memchr(s, ' ', (size_t)n);
    if (p == NULL)
        return 0;
    Py_ssize_t a = p - s;
    if (n >= 4 && ieq(s, 4, "sip/")) {
        if (!ieq(s, a, "sip/2.0") || n < a + 4)
            return 0;
        const char *c = s + a + 1;
        if (c[0] < '1' || c[0] > '6' || !IS(c[1], C_DIGIT) || !IS(c[2], C_DIGIT))
            return 0;
        if (n > a + 4 && c[3] != ' ')
            return 0;
        *status = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
        out[0] = ascii_common(s, a);
        out[1] = n > a + 5 ? ascii_common(s + a + 5, n - a - 5) : PyUnicode_New(0, 0);
        out[2] = PyUnicode_New(0, 0);
        return 1;
    }
    const char *q = memchr(p + 1, ' ', (size_t)(n - a - 1));
    if (q == NULL || a == 0)
        return 0;
    Py_ssize_t b = q - s;
    if (b == a + 1 || memchr(q + 1, ' ', (size_t)(n - b - 1)) != NULL)
        return 0;
    for (Py_ssize_t i = 0; i < a; i++)
        if (!IS(s[i], C_TOKEN))
            return 0;
    if (!ieq(q + 1, n - b - 1, "sip/2.0"))
        return 0;
    const char *u = s + a + 1;
    Py_ssize_t un = b - a - 1;
    if (u[0] == '<')
        return 0; /* RFC 4475 §3.1.2.7 */
    if (un >= 4 && (ieq(u, 4, "sip:") || ieq(u, 4, "sips"))) {
        Py_ssize_t at = un;
        while (at > 0 && u[at - 1] != '@')
            at--;
        if (memchr(u + at, '?', (size_t)(un - at)) != NULL)
            return 0; /* headers in a Request-URI: RFC 3261 §19.1.1 */
    }
    *status = 0;
    out[0] = ascii_common(q + 1, n - b - 1);
    out[1] = ascii_common(s, a);
    out[2] = ascii(u, un);
    return 1;
}

/* CSeq value "1*DIGIT LWS Method" (hdr/cseq.parse_cseq) with the number < 2**32. */
static int
cseq_value(const char *s, Py_ssize_t n, long long *num, Py_ssize_t *m0)
{
    Py_ssize_t i = 0;
    while (i < n && IS(s[i], C_DIGIT))
        i++;
    if (i == 0 || i >= n || (s[i] != ' ' && s[i] != '\t'))
        return 0;
    *num = uint_value(s, i, 4294967295LL);
    if (*num < 0)
        return 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    *m0 = i;
    while (i < n && IS(s[i], C_TOKEN))
        i++;
    return i == n && *m0 < n;
}

typedef struct {
    Py_ssize_t v0, v1; /* value bounds in the buffer; v0 < 0 when absent */
} span;

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "scan(data, max_headers, max_line, max_vias)");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0]))
        Py_RETURN_NONE;
    Py_ssize_t limit[3];
    for (int k = 0; k < 3; k++) {
        limit[k] = PyLong_AsSsize_t(args[k + 1]);
        if (limit[k] == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_ssize_t max_headers = limit[0], max_line = limit[1], max_vias = limit[2];
    PyObject *data = args[0];
    const char *s = PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);

    Py_ssize_t lead = 0;
    while (lead + 1 < n && s[lead] == '\r' && s[lead + 1] == '\n')
        lead += 2;
    Py_ssize_t e0 = line_end(s, n, lead);
    if (e0 < 0 || e0 == lead)
        Py_RETURN_NONE;

    span single[N_SINGLE];
    for (int k = 0; k < N_SINGLE; k++)
        single[k].v0 = -1;
    PyObject *vias = PyList_New(0);
    PyObject *routes = NULL;
    PyObject *start[3] = {NULL, NULL, NULL};
    PyObject *ftag = NULL, *ttag = NULL, *result = NULL;
    if (vias == NULL)
        return NULL;

    Py_ssize_t count = 0, i = e0 + 2, head_end = -1;
    while (i < n) {
        Py_ssize_t e = line_end(s, n, i);
        if (e < 0)
            goto python;
        if (e == i) {
            head_end = i;
            break;
        }
        if (++count > max_headers || e - i > max_line || s[i] == ' ' || s[i] == '\t')
            goto python;
        Py_ssize_t colon, v0, v1;
        Py_ssize_t nl = split_line(s + i, e - i, &colon, &v0, &v1);
        if (nl == 0)
            goto python;
        int kind = eager_kind(s + i, nl);
        if (kind == K_VIA) {
            int rc = via_value(s + i + v0, v1 - v0, vias);
            if (rc < 0)
                goto fail;
            if (rc == 0 || PyList_GET_SIZE(vias) > max_vias)
                goto python;
        }
        else if (kind == K_ROUTE) {
            if (routes == NULL && (routes = PyList_New(0)) == NULL)
                goto fail;
            PyObject *r = ascii(s + i + v0, v1 - v0);
            if (r == NULL || PyList_Append(routes, r) < 0) {
                Py_XDECREF(r);
                goto fail;
            }
            Py_DECREF(r);
        }
        else if (kind != K_OTHER) {
            if (single[kind].v0 >= 0)
                goto python; /* RFC 4475 §3.3.8, §3.3.9: Python names the fault */
            single[kind].v0 = i + v0;
            single[kind].v1 = i + v1;
        }
        i = e + 2;
    }
    if (head_end < 0 || count == 0 || PyList_GET_SIZE(vias) == 0)
        goto python;
    for (int k = K_CALLID; k <= K_TO; k++)
        if (single[k].v0 < 0)
            goto python;
    if (single[K_CALLID].v1 == single[K_CALLID].v0)
        goto python;

    long long cseq_num, mf = -1, cl = -1;
    Py_ssize_t m0;
    span *cs = &single[K_CSEQ];
    if (!cseq_value(s + cs->v0, cs->v1 - cs->v0, &cseq_num, &m0))
        goto python;
    if (single[K_MAXFWD].v0 >= 0) {
        mf = uint_value(s + single[K_MAXFWD].v0, single[K_MAXFWD].v1 - single[K_MAXFWD].v0, 255);
        if (mf < 0)
            goto python;
    }
    if (single[K_CLEN].v0 >= 0) {
        cl = uint_value(s + single[K_CLEN].v0, single[K_CLEN].v1 - single[K_CLEN].v0,
                        2147483647LL);
        if (cl < 0)
            goto python;
    }
    Py_ssize_t body_start = head_end + 2;
    Py_ssize_t body_end = cl < 0 ? n : body_start + (Py_ssize_t)cl;
    if (body_end > n)
        goto python; /* RFC 4475 §3.1.2.2: Python names the fault */
    const char *cm = s + cs->v0 + m0;
    Py_ssize_t cml = cs->v1 - cs->v0 - m0;
    long status = 0;
    int kind = start_line(s + lead, e0 - lead, start, &status);
    if (kind < 0 || (kind > 0 && (start[0] == NULL || start[1] == NULL || start[2] == NULL)))
        goto fail;
    if (kind == 0)
        goto python;
    if (status == 0) {
        /* RFC 4475 §3.1.2.17, §3.1.2.18: the CSeq method must match the request's. */
        if (PyUnicode_GET_LENGTH(start[1]) != cml ||
            memcmp(PyUnicode_1BYTE_DATA(start[1]), cm, (size_t)cml) != 0)
            goto python;
    }
    int rc = name_addr_tag(s + single[K_FROM].v0, single[K_FROM].v1 - single[K_FROM].v0, &ftag);
    if (rc < 0)
        goto fail;
    int unknown = rc == 0 ? 1 : 0;
    rc = name_addr_tag(s + single[K_TO].v0, single[K_TO].v1 - single[K_TO].v0, &ttag);
    if (rc < 0)
        goto fail;
    unknown |= rc == 0 ? 2 : 0;

    PyObject *msg_data;
    if (lead == 0 && body_end == n)
        msg_data = Py_NewRef(data);
    else
        msg_data = PyBytes_FromStringAndSize(s + lead, body_end - lead);
    PyObject *items[19] = {
        PyLong_FromLong(status), start[0], start[1], start[2], vias,
        routes != NULL ? routes : Py_NewRef(Py_None),
        ascii(s + single[K_CALLID].v0, single[K_CALLID].v1 - single[K_CALLID].v0),
        PyLong_FromLongLong(cseq_num), ascii_common(cm, cml),
        ascii(s + single[K_FROM].v0, single[K_FROM].v1 - single[K_FROM].v0),
        ftag != NULL ? ftag : Py_NewRef(Py_None),
        ascii(s + single[K_TO].v0, single[K_TO].v1 - single[K_TO].v0),
        ttag != NULL ? ttag : Py_NewRef(Py_None), PyLong_FromLong(unknown),
        mf < 0 ? Py_NewRef(Py_None) : PyLong_FromLongLong(mf),
        cl < 0 ? Py_NewRef(Py_None) : PyLong_FromLongLong(cl),
        PyBytes_FromStringAndSize(s + body_start, body_end - body_start), msg_data,
        PyLong_FromSsize_t(head_end - lead),
    };
    /* The tuple takes every reference; any NULL item (an error) fails the whole. */
    result = PyTuple_New(19);
    int missing = result == NULL;
    for (int k = 0; k < 19; k++) {
        if (items[k] == NULL)
            missing = 1;
        else if (result != NULL)
            PyTuple_SET_ITEM(result, k, items[k]);
        else
            Py_DECREF(items[k]);
    }
    if (missing) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;

python:
    Py_XDECREF(ftag);
    Py_XDECREF(ttag);
    Py_XDECREF(start[0]);
    Py_XDECREF(start[1]);
    Py_XDECREF(start[2]);
    Py_DECREF(vias);
    Py_XDECREF(routes);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(ftag);
    Py_XDECREF(ttag);
    Py_XDECREF(start[0]);
    Py_XDECREF(start[1]);
    Py_XDECREF(start[2]);
    Py_DECREF(vias);
    Py_XDECREF(routes);
    return NULL;
}

/* ------------------------------------------------------------------ fields */

/* Whether s[0:n] holds only octets below 0x80 (eight at a time). */
static int
all_ascii(const char *s, Py_ssize_t n)
{
    uint64_t acc = 0;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= (unsigned char)s[i];
    return (acc & 0x8080808080808080ULL) == 0;
}

static PyObject *field_slot[4]; /* "key", "name", "raw", "vstart" */

/* How fields() makes a Field(key, name, raw, vstart). For a plain class whose four
 * attributes are slots (message.Field), the instance is made as object.__new__ makes it
 * and the slots are set through their descriptors, which skips the Python __init__; any
 * other callable is simply called. */
typedef struct {
    PyObject *factory;
    PyObject *descr[4]; /* borrowed from the class; NULL: call the factory */
} field_maker;

static int
field_maker_init(field_maker *fm, PyObject *factory)
{
    fm->factory = factory;
    for (int k = 0; k < 4; k++)
        fm->descr[k] = NULL;
    if (!PyType_Check(factory) || ((PyTypeObject *)factory)->tp_new != PyBaseObject_Type.tp_new)
        return 0;
    PyObject *d[4];
    for (int k = 0; k < 4; k++) {
        d[k] = PyDict_GetItemWithError(((PyTypeObject *)factory)->tp_dict, field_slot[k]);
        if (d[k] == NULL) {
            if (PyErr_Occurred())
                return -1;
            return 0; /* inherited or not a slot: call the factory */
        }
        if (Py_TYPE(d[k])->tp_descr_set == NULL ||
            strcmp(Py_TYPE(d[k])->tp_name, "member_descriptor") != 0)
            return 0;
    }
    for (int k = 0; k < 4; k++)
        fm->descr[k] = d[k];
    return 0;
}

static PyObject *
new_field(field_maker *fm, PyObject *const a[4])
{
    if (fm->descr[0] == NULL)
        return PyObject_Vectorcall(fm->factory, a, 4, NULL);
    PyTypeObject *tp = (PyTypeObject *)fm->factory;
    PyObject *empty = PyTuple_New(0);
    if (empty == NULL)
        return NULL;
    PyObject *f = tp->tp_new(tp, empty, NULL);
    Py_DECREF(empty);
    if (f == NULL)
        return NULL;
    for (int k = 0; k < 4; k++) {
        PyObject *d = fm->descr[k];
        if (Py_TYPE(d)->tp_descr_set(d, f, a[k]) < 0) {
            Py_DECREF(f);
            return NULL;
        }
    }
    return f;
}

static PyObject *
fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "fields(data: bytes, head_len: int, Field)");
        return NULL;
    }
    Py_ssize_t hl = PyLong_AsSsize_t(args[1]);
    if (hl == -1 && PyErr_Occurred())
        return NULL;
    field_maker fm;
    if (field_maker_init(&fm, args[2]) < 0)
        return NULL;
    const char *s = PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    if (hl < 0 || hl > n) {
        PyErr_SetString(PyExc_ValueError, "head_len out of range");
        return NULL;
    }
    if (!all_ascii(s, hl)) {
        PyErr_SetString(PyExc_ValueError, "header block was not produced by scan()");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t i = 0;
    int first = 1;
    while (i < hl) {
        const char *q = memchr(s + i, '\r', (size_t)(hl - i));
        Py_ssize_t e = q == NULL ? hl : q - s;
        const char *c = memchr(s + i, ':', (size_t)(e - i));
        if (e + 1 >= hl || s[e + 1] != '\n' || memchr(s + i, '\n', (size_t)(e - i)) != NULL ||
            (!first && (c == NULL || c == s + i))) {
            PyErr_SetString(PyExc_ValueError, "header block was not produced by scan()");
            Py_DECREF(out);
            return NULL;
        }
        if (first) { /* the start line */
            first = 0;
            i = e + 2;
            continue;
        }
        Py_ssize_t colon = c - (s + i), nl = colon;
        while (nl > 0 && (s[i + nl - 1] == ' ' || s[i + nl - 1] == '\t'))
            nl--;
        PyObject *a[4] = {NULL, NULL, NULL, NULL};
        for (spelling *t = NAMES; t->text != NULL; t++) {
            if (t->len == nl && memcmp(t->text, s + i, (size_t)nl) == 0) {
                a[0] = Py_NewRef(t->keystr);
                a[1] = Py_NewRef(t->str);
                break;
            }
        }
        if (a[0] == NULL) {
            a[0] = header_key(s + i, nl);
            a[1] = ascii(s + i, nl);
        }
        a[2] = ascii(s + i, e - i);
        a[3] = PyLong_FromSsize_t(colon + 1);
        PyObject *f = NULL;
        if (a[0] != NULL && a[1] != NULL && a[2] != NULL && a[3] != NULL)
            f = new_field(&fm, a);
        for (int k = 0; k < 4; k++)
            Py_XDECREF(a[k]);
        if (f == NULL || PyList_Append(out, f) < 0) {
            Py_XDECREF(f);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(f);
        i = e + 2;
    }
    return out;
}

/* ------------------------------------------------------------------ via */

static PyObject *
via(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "via(value: str)");
        return NULL;
    }
    if (PyUnicode_READY(arg) < 0)
        return NULL;
    if (!PyUnicode_IS_ASCII(arg))
        Py_RETURN_NONE;
    const char *s = (const char *)PyUnicode_1BYTE_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!IS(s[i], C_TEXT))
            Py_RETURN_NONE;
    Py_ssize_t a = 0, b = n;
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    int rc = via_value(s + a, b - a, out);
    if (rc <= 0) {
        Py_DECREF(out);
        if (rc < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    return out;
}

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(data, max_headers, max_line, max_vias) -> tuple | None\n\n"
     "Recognise a well-formed SIP message; None sends it to the Python parser."},
    {"fields", (PyCFunction)(void (*)(void))fields, METH_FASTCALL,
     "fields(data, head_len, Field) -> list[Field]\n\n"
     "Split the header block of a message scan() accepted into Field objects."},
    {"via", (PyCFunction)via, METH_O,
     "via(value) -> list[tuple] | None\n\n"
     "The via-parms of a Via value of the usual shape, as scan() gives them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_speedups", "C accelerator of sipedge.sip.parser.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_classes();
    if (init_cache(WORDS) < 0 || init_cache(KEYS) < 0 || init_names() < 0)
        return NULL;
    static const char *const slots[4] = {"key", "name", "raw", "vstart"};
    for (int k = 0; k < 4; k++)
        if (field_slot[k] == NULL && (field_slot[k] = PyUnicode_InternFromString(slots[k])) == NULL)
            return NULL;
    return PyModule_Create(&module_def);
}
