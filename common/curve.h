/* curve.h — CURVE key files (ZeroMQ's text form, as CZMQ's zcert writes it:
 * `public-key = "Z85"` and, in the secret file, `secret-key = "Z85"`) and
 * the sets of public keys a server admits. The one place key files become
 * keys: every line length, key length and Z85 character is checked. */
#ifndef PS_CURVE_H
#define PS_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define PS_CURVE_Z85_LEN  40   /* a 32-byte key in Z85 text, without the NUL */
#define PS_CURVE_KEYS_MAX 4096 /* public keys in one authorized folder */

/* A key pair as ZeroMQ's socket options take it (Z85, NUL-terminated);
 * secret_z85 is "" for a public key alone. */
typedef struct ps_curve_pair {
    char public_z85[PS_CURVE_Z85_LEN + 1];
    char secret_z85[PS_CURVE_Z85_LEN + 1];
} ps_curve_pair;

/* Public keys allowed in (binary, 32 bytes each), sorted for lookup. */
typedef struct ps_curve_keyset {
    uint8_t (*keys)[32];
    size_t n;
} ps_curve_keyset;

/* Makes a new key pair and writes NAME.key (public, mode 0644) and
 * NAME.key_secret (mode 0600, made with that mode). Refuses to overwrite
 * either file. PS_EIO (err names the file), PS_EUNSUPPORTED when libzmq has
 * no CURVE. */
int ps_curve_keygen(const char *name, ps_error *err);

/* Reads the public key of a .key or .key_secret file into pair->public_z85.
 * PS_EIO (cannot read) or PS_ECONFIG (no valid public-key line). */
int ps_curve_public_load(const char *path, ps_curve_pair *pair, ps_error *err);

/* Reads a secret key file into *pair (both keys; the public one is derived
 * from the secret when the file has none). Like ssh, a file that its group
 * or others may read or write is refused: PS_ECONFIG "keys/w.key_secret:
 * mode 0644 lets others read the secret key: chmod 600 it". When
 * $CREDENTIALS_DIRECTORY (systemd's LoadCredential=) holds a file of the
 * same base name, that file is read instead; used (may be NULL, cap bytes)
 * gets the path read. */
int ps_curve_secret_load(const char *path, ps_curve_pair *pair, char *used, size_t cap,
                         ps_error *err);

/* Loads every *.key file of a folder (or the one file path names) into *set
 * (caller frees with ps_curve_keyset_fini). An empty folder is fine (nobody
 * is admitted). PS_EIO, PS_ECONFIG (a malformed key file, named), PS_EFULL
 * past PS_CURVE_KEYS_MAX, PS_ENOMEM. */
int ps_curve_keyset_load(const char *path, ps_curve_keyset *set, ps_error *err);

/* Whether the 32-byte key is in the set. */
bool ps_curve_keyset_has(const ps_curve_keyset *set, const uint8_t key[32]);

/* Frees the set's keys; safe on a zeroed or finished set. */
void ps_curve_keyset_fini(ps_curve_keyset *set);

#endif
