/* suggest.h — did-you-mean for an unknown key: an edit distance that forgives
 * case and a swap of neighbours, the other names people write for a key (a
 * row's aka), and the section of the schema where a misplaced key belongs.
 * The walker (yamlwalk.h) asks for the hint; a new alias is a word in a row's
 * aka in schema.c. */
#ifndef PS_SUGGEST_H
#define PS_SUGGEST_H

#include <stddef.h>

#include "yamlwalk.h"

/* Edits (insert, delete, substitute, swap two neighbours) from a to b, case
 * ignored; only the first 63 bytes of each count. */
size_t ps_suggest_distance(const char *a, const char *b);

/* The distance from word to name or to the nearest of its aliases (aka:
 * "learning_rate|eta", NULL for none; an alias of 64 bytes or more is
 * skipped). */
size_t ps_suggest_name_distance(const char *word, const char *name, const char *aka);

/* Writes into buf (cap bytes) the hint after unknown key word in section
 * here, without parentheses: "did you mean \"lr\"?" for the nearest key of
 * here when it is near (or word is one of its aliases); else, when here is
 * root or a section below it, "did you mean \"training.epochs\"?" for the
 * one other section that holds word (as a name or, alone, as an alias), or
 * "\"type\" belongs in a section: model, optimizer" for several; else
 * "valid keys: a, b". root may be NULL. */
void ps_suggest_hint(const char *word, const ps_yamlwalk_section *here,
                     const ps_yamlwalk_section *root, char *buf, size_t cap);

#endif
