/* test_text.c — ps_text_printable (text.h): what a terminal must never get
 * from a peer (C0 and C1 controls, DEL, bytes that are not UTF-8, the
 * characters that reorder a line) comes out escaped, the rest unchanged;
 * the output is its own fixed point, and a short buffer never cuts an
 * escape or a character in two. */
#include <check.h>

#include "check_main.h"
#include <string.h>

#include "text.h"

/* src as ps_text_printable shows it in a roomy buffer. */
static const char *shown(const char *src)
{
    static char out[1024];
    ck_assert(ps_text_printable(out, sizeof out, src));
    return out;
}

START_TEST(printable_ascii_and_utf8_are_kept)
{
    ck_assert_str_eq(shown(""), "");
    ck_assert_str_eq(shown("node-7.example.org"), "node-7.example.org");
    ck_assert_str_eq(shown("a\\b \"c\" ~"), "a\\b \"c\" ~");
    ck_assert_str_eq(shown("h\xc3\xb4te-\xe6\x97\xa5\xe6\x9c\xac"),
                     "h\xc3\xb4te-\xe6\x97\xa5\xe6\x9c\xac");
    ck_assert_str_eq(shown("\xc2\xa0\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"),
                     "\xc2\xa0\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"); /* U+00A0, an emoji, U+10FFFF */
}
END_TEST

START_TEST(terminal_escapes_are_shown_not_obeyed)
{
    /* the window title, a cleared screen, a bell */
    ck_assert_str_eq(shown("evil\x1b]0;pwned\x07\x1b[2J\x1b[H"),
                     "evil\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H");
    ck_assert_str_eq(shown("a\tb\rc\nd\x7f"), "a\\x09b\\x0dc\\x0ad\\x7f");
    ck_assert_str_eq(shown("\x01\x1f"), "\\x01\\x1f");
}
END_TEST

START_TEST(c1_controls_are_escaped_in_utf8_and_alone)
{
    ck_assert_str_eq(shown("\xc2\x9b"
                           "2J"),
                     "\\xc2\\x9b2J"); /* U+009B, CSI */
    ck_assert_str_eq(shown("\xc2\x80\xc2\x9f"), "\\xc2\\x80\\xc2\\x9f");
    ck_assert_str_eq(shown("\x9b"
                           "2J"),
                     "\\x9b2J"); /* the 8-bit CSI, no UTF-8 */
}
END_TEST

START_TEST(bytes_that_are_not_utf8_are_escaped)
{
    ck_assert_str_eq(shown("\xff\xfe"), "\\xff\\xfe");
    ck_assert_str_eq(shown("\xc0\xaf"), "\\xc0\\xaf");                   /* overlong '/' */
    ck_assert_str_eq(shown("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");          /* overlong, 3 bytes */
    ck_assert_str_eq(shown("\xed\xa0\x80"), "\\xed\\xa0\\x80");          /* a surrogate */
    ck_assert_str_eq(shown("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
    ck_assert_str_eq(shown("ab\xe6\x97"), "ab\\xe6\\x97");               /* cut at the end */
    ck_assert_str_eq(shown("\xe6x\x97"), "\\xe6x\\x97");
}
END_TEST

START_TEST(characters_that_reorder_or_break_a_line_are_escaped)
{
    ck_assert_str_eq(shown("abc\xe2\x80\xae"
                           "fed"),
                     "abc\\u202efed"); /* right-to-left override */
    ck_assert_str_eq(shown("\xe2\x81\xa6\xe2\x81\xa9"), "\\u2066\\u2069");
    ck_assert_str_eq(shown("a\xe2\x80\xa8"
                           "b\xe2\x80\xa9"),
                     "a\\u2028b\\u2029");
    ck_assert_str_eq(shown("\xe2\x80\x94"), "\xe2\x80\x94"); /* an em dash is fine */
}
END_TEST

START_TEST(clean_text_is_a_fixed_point)
{
    const char *nasty[] = {"evil\x1b]0;t\x07", "\xc2\x9b\x9b\xff", "\xe2\x80\xae\\x1b", "ok"};
    for (size_t i = 0; i < sizeof nasty / sizeof nasty[0]; i++) {
        char once[256], twice[256];
        ck_assert(ps_text_printable(once, sizeof once, nasty[i]));
        ck_assert(ps_text_printable(twice, sizeof twice, once));
        ck_assert_str_eq(once, twice);
        for (const char *p = once; *p != '\0'; p++)
            ck_assert_msg(*p != '\x1b' && *p != '\x07' && (unsigned char)*p != 0x9b,
                          "a control byte in \"%s\"", once);
    }
}
END_TEST

START_TEST(a_short_buffer_cuts_between_units)
{
    char out[8];
    memset(out, 'z', sizeof out);
    ck_assert(!ps_text_printable(out, 6, "abc\x1b[2J"));
    ck_assert_str_eq(out, "abc"); /* "\x1b" does not fit: not half of it */
    ck_assert(!ps_text_printable(out, 5, "ab\xe6\x97\xa5"));
    ck_assert_str_eq(out, "ab"); /* nor half a character */
    ck_assert(ps_text_printable(out, 4, "abc"));
    ck_assert_str_eq(out, "abc");
    ck_assert(!ps_text_printable(out, 1, "a"));
    ck_assert_str_eq(out, "");
    ck_assert(ps_text_printable(out, 0, "")); /* nothing written, nothing lost */
    ck_assert(!ps_text_printable(out, 0, "a"));
}
END_TEST

static Suite *text_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, printable_ascii_and_utf8_are_kept);
    tcase_add_test(tc, terminal_escapes_are_shown_not_obeyed);
    tcase_add_test(tc, c1_controls_are_escaped_in_utf8_and_alone);
    tcase_add_test(tc, bytes_that_are_not_utf8_are_escaped);
    tcase_add_test(tc, characters_that_reorder_or_break_a_line_are_escaped);
    tcase_add_test(tc, clean_text_is_a_fixed_point);
    tcase_add_test(tc, a_short_buffer_cuts_between_units);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(text_suite());
}
