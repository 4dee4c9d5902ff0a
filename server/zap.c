/* zap.c — psd's ZAP handler (RFC 27) and the check of each request's role.
 * ZeroMQ asks the handler once per CURVE connection, with the client's
 * public key; the answer's User-Id ("w", "a" or "wa", a space, the key in
 * Z85) travels with every message of that connection, so a request's role
 * is read from its frame without a lookup. */
#include "zap.h"

#include "curve.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZAP_ENDPOINT   "inproc://zeromq.zap.01"
#define ZAP_DOMAIN     "psd"
#define ZAP_FRAMES     7   /* version, id, domain, address, identity, mechanism, key */
#define REFUSED_LOGGED 256 /* keys whose refusal was logged; later ones are only counted */
#define ADDRESS_MAX    64

/* Kinds of refusal logged once each (besides once per key). */
enum {
    SAID_PLAIN,  /* a client without CURVE */
    SAID_CRYPTO, /* a client with the wrong server key */
    SAID_OTHER,  /* another failed handshake */
    SAID_COUNT
};

struct ps_zap {
    void *rep; /* the ZAP handler */
    const ps_log *log;
    uint32_t shard;
    ps_curve_keyset workers, admins;
    uint64_t refused;
    uint8_t logged[REFUSED_LOGGED][32];
    size_t nlogged;
    bool said[SAID_COUNT];
};

/* True the first time a refusal of this key (or kind) is seen. */
static bool first_refusal(ps_zap *z, const uint8_t key[32])
{
    for (size_t i = 0; i < z->nlogged; i++)
        if (memcmp(z->logged[i], key, 32) == 0)
            return false;
    if (z->nlogged == REFUSED_LOGGED)
        return false;
    memcpy(z->logged[z->nlogged++], key, 32);
    return true;
}

ps_zap *ps_zap_new(void *zctx, void *router, const ps_job *job, uint32_t shard, const ps_log *log,
                   ps_error *err)
{
    ps_zap *z = calloc(1, sizeof *z);
    if (z == NULL) {
        ps_error_set(err, PS_ENOMEM, "cannot allocate the ZAP handler");
        return NULL;
    }
    z->log = log;
    z->shard = shard;
    if (!zmq_has("curve")) {
        ps_error_set(err, PS_EUNSUPPORTED, "%s: security.curve: this libzmq has no CURVE",
                     job->path);
        goto fail;
    }
    ps_curve_pair pair;
    char used[PS_PATH_MAX];
    const char *missing = job->security.server_secret_key[0] == '\0'    ? "server_secret_key"
                          : job->security.authorized_workers[0] == '\0' ? "authorized_workers"
                                                                        : NULL;
    if (missing != NULL) {
        ps_error_set(err, PS_ECONFIG, "%s: security.curve.%s is required for psd", job->path,
                     missing);
        goto fail;
    }
    if (ps_curve_secret_load(job->security.server_secret_key, &pair, used, sizeof used, err) != 0 ||
        ps_curve_keyset_load(job->security.authorized_workers, &z->workers, err) != 0 ||
        (job->security.authorized_admins[0] != '\0' &&
         ps_curve_keyset_load(job->security.authorized_admins, &z->admins, err) != 0))
        goto fail;
    if (z->workers.n == 0) { /* no worker could ever join: a mistake, not a policy */
        ps_error_set(err, PS_ECONFIG,
                     "%s: security.curve.authorized_workers: %s holds no worker key (*.key, "
                     "made by psctl keygen): no worker could ever join",
                     job->path, job->security.authorized_workers);
        goto fail;
    }
    int linger = 0, on = 1;
    z->rep = zmq_socket(zctx, ZMQ_REP);
    if (z->rep == NULL || zmq_setsockopt(z->rep, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(z->rep, ZAP_ENDPOINT) != 0) {
        ps_error_set(err, PS_EZMQ, "cannot bind the ZAP handler: %s", zmq_strerror(errno));
        goto fail;
    }
    if (zmq_setsockopt(router, ZMQ_CURVE_SERVER, &on, sizeof on) != 0 ||
        zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, pair.secret_z85, PS_CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(router, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) != 0) {
        ps_error_set(err, PS_EZMQ, "cannot make the socket a CURVE server: %s",
                     zmq_strerror(errno));
        goto fail;
    }
    memset(&pair.secret_z85, 0, sizeof pair.secret_z85);
    PS_LOG_I(log, "shard %u: CURVE on: server key %s (from %s), %zu worker key%s, %zu admin key%s",
             shard, pair.public_z85, used, z->workers.n, z->workers.n == 1 ? "" : "s", z->admins.n,
             z->admins.n == 1 ? "" : "s");
    return z;
fail:
    ps_zap_destroy(&z);
    return NULL;
}

void *ps_zap_socket(ps_zap *z)
{
    return z->rep;
}

/* Sends one frame of a ZAP reply. */
static void reply_frame(ps_zap *z, const void *data, size_t len, bool more)
{
    zmq_send(z->rep, data, len, more ? ZMQ_SNDMORE : 0);
}

/* The role of a key: "w", "a", "wa", or "" (refused). */
static const char *key_role(const ps_zap *z, const uint8_t key[32])
{
    bool w = ps_curve_keyset_has(&z->workers, key), a = ps_curve_keyset_has(&z->admins, key);
    return w && a ? "wa" : w ? "w" : a ? "a" : "";
}

/* Answers one ZAP request (its frames in f, n of them). */
static void zap_answer(ps_zap *z, zmq_msg_t *f, int n)
{
    bool ok = n == ZAP_FRAMES && zmq_msg_size(&f[0]) == 3 &&
              memcmp(zmq_msg_data(&f[0]), "1.0", 3) == 0 && zmq_msg_size(&f[5]) == 5 &&
              memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 && zmq_msg_size(&f[6]) == 32;
    const char *role = "";
    char user[8 + PS_CURVE_Z85_LEN + 1] = "";
    char z85[PS_CURVE_Z85_LEN + 1] = "?";
    char address[ADDRESS_MAX] = "?";
    if (n > 3) {
        size_t len =
            zmq_msg_size(&f[3]) < sizeof address - 1 ? zmq_msg_size(&f[3]) : sizeof address - 1;
        memcpy(address, zmq_msg_data(&f[3]), len);
        address[len] = '\0';
    }
    if (ok) {
        const uint8_t *key = zmq_msg_data(&f[6]);
        zmq_z85_encode(z85, key, 32);
        role = key_role(z, key);
        snprintf(user, sizeof user, "%s %s", role, z85);
        if (role[0] == '\0') {
            z->refused++;
            if (first_refusal(z, key))
                PS_LOG_W(z->log,
                         "shard %u: refused CURVE key %s from %s: not an authorized worker or "
                         "admin key",
                         z->shard, z85, address);
        }
    }
    bool admit = ok && role[0] != '\0';
    reply_frame(z, "1.0", 3, true);
    reply_frame(z, n > 1 ? zmq_msg_data(&f[1]) : "", n > 1 ? zmq_msg_size(&f[1]) : 0, true);
    reply_frame(z, admit ? "200" : "400", 3, true);
    const char *text = admit ? "OK" : "key not authorized";
    reply_frame(z, text, strlen(text), true);
    reply_frame(z, user, admit ? strlen(user) : 0, true);
    reply_frame(z, "", 0, false);
}

/* Reads one ZAP request, whole, and answers it. False when none waits. */
static bool zap_one(ps_zap *z)
{
    zmq_msg_t f[ZAP_FRAMES];
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, z->rep, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        if (n < ZAP_FRAMES)
            f[n] = part; /* moved: closed below */
        else
            zmq_msg_close(&part);
        n++;
    }
    if (n == 0)
        return false;
    zap_answer(z, f, n);
    for (int i = 0; i < n && i < ZAP_FRAMES; i++)
        zmq_msg_close(&f[i]);
    return true;
}

void ps_zap_handshake_event(ps_zap *z, uint16_t event, uint32_t value, const char *endpoint)
{
    if (event != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL &&
        event != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        return; /* AUTH: a refused key, which the ZAP handler said, with the key */
    int kind = SAID_OTHER;
    /* a client without CURVE often hangs up on the server's greeting
     * before its own mechanism is read: an error without detail */
    const char *what = "a client that broke off the handshake (likely one without CURVE)";
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
        value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        kind = SAID_PLAIN;
        what = "a client without CURVE";
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
               value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC) {
        kind = SAID_CRYPTO;
        what = "a client with the wrong server key (its CURVE hello does not decrypt)";
    }
    z->refused++;
    if (z->said[kind])
        return;
    z->said[kind] = true;
    PS_LOG_W(z->log, "shard %u: refused %s on %s (%s 0x%x; said once per kind)", z->shard, what,
             endpoint, event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "errno",
             (unsigned)value);
}

void ps_zap_handle(ps_zap *z)
{
    while (zap_one(z)) {
    }
}

static bool type_is_admin(ps_msg_type type)
{
    return type == PS_MSG_STATUS || type == PS_MSG_CHECKPOINT;
}

/* Whether the role ("w", "a", "wa": the User-Id up to its space) holds r. */
static bool role_has(const char *user, char r)
{
    return user != NULL && user[0] != ' ' && strchr(user, ' ') != NULL &&
           memchr(user, r, (size_t)(strchr(user, ' ') - user)) != NULL;
}

bool ps_zap_admits(ps_zap *z, zmq_msg_t *part, ps_msg_type type)
{
    const char *user = zmq_msg_gets(part, "User-Id");
    char need = type_is_admin(type) ? 'a' : 'w';
    /* STATUS only reads: a worker asks it of its own job at the end (the
     * engine answers only for this psd's job); CHECKPOINT stays an admin's */
    if (role_has(user, need) || (type == PS_MSG_STATUS && role_has(user, 'w')))
        return true;
    z->refused++;
    const char *z85 = user != NULL && strchr(user, ' ') != NULL ? strchr(user, ' ') + 1 : "?";
    uint8_t key[32] = {0};
    if (strlen(z85) == PS_CURVE_Z85_LEN)
        zmq_z85_decode(key, z85);
    key[0] ^= (uint8_t)need; /* a key refused as admin is logged apart from one refused as worker */
    if (!first_refusal(z, key))
        return false;
    const char *address = zmq_msg_gets(part, "Peer-Address");
    PS_LOG_W(z->log, "shard %u: refused %s from key %s at %s: it is not an authorized %s key",
             z->shard, ps_msg_type_name(type), z85, address != NULL ? address : "?",
             need == 'a' ? "admin" : "worker");
    return false;
}

uint64_t ps_zap_refused(const ps_zap *z)
{
    return z->refused;
}

void ps_zap_destroy(ps_zap **zp)
{
    if (zp == NULL || *zp == NULL)
        return;
    ps_zap *z = *zp;
    if (z->rep != NULL)
        zmq_close(z->rep);
    ps_curve_keyset_fini(&z->workers);
    ps_curve_keyset_fini(&z->admins);
    free(z);
    *zp = NULL;
}
