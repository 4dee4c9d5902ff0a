/* text.h — text from the network made safe to show on a terminal: a host
 * name in a HELLO, an ERROR's sentence, a shard's detail. A peer may put
 * escape sequences there that would set the operator's window title, clear
 * the screen or worse; shown through this, they read as text. */
#ifndef PS_TEXT_H
#define PS_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Copies src into dst (cap bytes, always NUL-terminated when cap > 0) so
 * that a terminal shows it and obeys nothing in it: each byte of a C0
 * control (ESC, BEL, CR, LF, TAB, ...), of DEL, of a C1 control (U+0080 ..
 * U+009F in UTF-8) and each byte that is not part of valid UTF-8 (a lone
 * 0x9b, the 8-bit CSI, among them: overlong forms and surrogates too)
 * becomes \xNN (lower-case hex); the characters that reorder or break
 * lines (U+202A .. U+202E, U+2066 .. U+2069, U+2028, U+2029) become
 * \uNNNN. Printable ASCII and other valid UTF-8 stay as they are. Its
 * output is its own fixed point: cleaning clean text changes nothing. An
 * escape or a character is never cut in two. Returns false when src did
 * not fit whole. */
bool ps_text_printable(char *dst, size_t cap, const char *src);

#endif
