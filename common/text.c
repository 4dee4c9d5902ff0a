/* text.c — text from the network made safe to show on a terminal
 * (text.h). */
#include "text.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The length (2 to 4) of the valid UTF-8 sequence s starts with, its code
 * point in *cp; 0 when s starts none (RFC 3629: no overlong form, no
 * surrogate, nothing past U+10FFFF). Reads no further than a NUL. */
static size_t utf8_sequence(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t n;
    uint32_t v;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0fu;
        lo = c == 0xe0 ? 0xa0 : lo; /* shorter forms are overlong */
        hi = c == 0xed ? 0x9f : hi; /* U+D800 .. U+DFFF are surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07u;
        lo = c == 0xf0 ? 0x90 : lo;
        hi = c == 0xf4 ? 0x8f : hi; /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        unsigned char d = s[i];
        if (d < (i == 1 ? lo : 0x80) || d > (i == 1 ? hi : 0xbf))
            return 0;
        v = v << 6 | (d & 0x3fu);
    }
    *cp = v;
    return n;
}

/* The characters that reorder text or break its lines. */
static bool reorders(uint32_t cp)
{
    return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 ||
           cp == 0x2029;
}

bool ps_text_printable(char *dst, size_t cap, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    if (cap == 0)
        return *s == '\0';
    size_t at = 0;
    while (*s != '\0') {
        char unit[8];
        size_t len, step;
        uint32_t cp = 0;
        size_t n = *s >= 0x80 ? utf8_sequence(s, &cp) : 0;
        if (*s >= 0x20 && *s < 0x7f) {
            unit[0] = (char)*s;
            len = step = 1;
        } else if (n > 0 && cp >= 0xa0 && !reorders(cp)) {
            memcpy(unit, s, n);
            len = step = n;
        } else if (n > 0 && reorders(cp)) {
            len = (size_t)snprintf(unit, sizeof unit, "\\u%04x", (unsigned)cp);
            step = n;
        } else { /* a control, DEL, a C1 control's first byte, or not UTF-8 */
            len = (size_t)snprintf(unit, sizeof unit, "\\x%02x", (unsigned)*s);
            step = 1;
        }
        if (at + len >= cap) {
            dst[at] = '\0';
            return false;
        }
        memcpy(dst + at, unit, len);
        at += len;
        s += step;
    }
    dst[at] = '\0';
    return true;
}
