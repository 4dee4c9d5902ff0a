/* suggest.c — the hint after an unknown key (suggest.h): nearest key of its
 * section by edit distance or alias, then the other sections of the schema,
 * then the list of valid keys. */
#include "suggest.h"

#include "util.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static size_t min3(size_t a, size_t b, size_t c)
{
    size_t m = a < b ? a : b;
    return m < c ? m : c;
}

size_t ps_suggest_distance(const char *a, const char *b)
{
    enum { N = 64 };
    size_t d[N][N];
    size_t la = strnlen(a, N - 1), lb = strnlen(b, N - 1);
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ca != cb));
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1;
        }
    }
    return d[la][lb];
}

size_t ps_suggest_name_distance(const char *word, const char *name, const char *aka)
{
    size_t best = ps_suggest_distance(word, name);
    for (const char *a = aka; a != NULL && *a != '\0';) {
        char alias[64];
        size_t n = strcspn(a, "|");
        if (n < sizeof alias) {
            memcpy(alias, a, n);
            alias[n] = '\0';
            size_t dist = ps_suggest_distance(word, alias);
            if (dist < best)
                best = dist;
        }
        a += n + (a[n] == '|');
    }
    return best;
}

static size_t key_distance(const char *word, const ps_yamlwalk_key *k)
{
    return ps_suggest_name_distance(word, k->name, k->aka);
}

/* "optimizer.lr" from "optimizer" and "lr" */
static void join_path(char *buf, size_t cap, const char *prefix, const char *name)
{
    ps_strlcpy(buf, prefix, cap);
    size_t n = strlen(buf);
    if (n > 0 && n + 1 < cap)
        buf[n++] = '.';
    ps_strlcpy(buf + n, name, cap - n);
}

/* What the other sections hold of word. */
typedef struct elsewhere {
    const char *word;
    const ps_yamlwalk_section *here;
    size_t names, aliases; /* keys named word; keys with word as an alias */
    char list[256];        /* the sections holding a key named word: "model, optimizer" */
    size_t at;
    char path[PS_YAMLWALK_PATH_MAX];       /* the first key named word */
    char alias_path[PS_YAMLWALK_PATH_MAX]; /* the first key with word as an alias */
} elsewhere;

/* Looks for e->word in sec and the sections below it, here excepted, in
 * table order (a section before those below it). */
static void look_in(elsewhere *e, const ps_yamlwalk_section *sec)
{
    for (size_t i = 0; sec != e->here && i < sec->nkeys; i++) {
        const ps_yamlwalk_key *k = &sec->keys[i];
        if (strcasecmp(e->word, k->name) == 0) {
            if (e->names++ == 0)
                join_path(e->path, sizeof e->path, sec->path, k->name);
            if (e->at < sizeof e->list)
                e->at += (size_t)snprintf(e->list + e->at, sizeof e->list - e->at, "%s%s",
                                          e->at ? ", " : "", sec->path);
        } else if (key_distance(e->word, k) == 0 && e->aliases++ == 0) {
            join_path(e->alias_path, sizeof e->alias_path, sec->path, k->name);
        }
    }
    for (size_t i = 0; i < sec->nkeys; i++)
        if (sec->keys[i].kind == PS_YAMLWALK_SECTION)
            look_in(e, sec->keys[i].sub);
}

static bool is_below(const ps_yamlwalk_section *sec, const ps_yamlwalk_section *root)
{
    if (sec == root)
        return true;
    for (size_t i = 0; i < root->nkeys; i++)
        if (root->keys[i].kind == PS_YAMLWALK_SECTION && is_below(sec, root->keys[i].sub))
            return true;
    return false;
}

void ps_suggest_hint(const char *word, const ps_yamlwalk_section *here,
                     const ps_yamlwalk_section *root, char *buf, size_t cap)
{
    size_t best = SIZE_MAX;
    const ps_yamlwalk_key *near = NULL;
    for (size_t i = 0; i < here->nkeys; i++) {
        size_t dist = key_distance(word, &here->keys[i]);
        if (dist < best) {
            best = dist;
            near = &here->keys[i];
        }
    }
    if (best == 0) {
        snprintf(buf, cap, "did you mean \"%s\"?", near->name);
        return;
    }
    if (root != NULL && is_below(here, root)) {
        elsewhere e = {.word = word, .here = here};
        look_in(&e, root);
        if (e.names > 1) {
            char shown[PS_YAMLWALK_SHOW_MAX + 8];
            ps_yamlwalk_show(shown, sizeof shown, word, PS_YAMLWALK_SHOW_MAX);
            snprintf(buf, cap, "\"%s\" belongs in a section: %s", shown, e.list);
            return;
        }
        if (e.names == 1 || e.aliases == 1) {
            snprintf(buf, cap, "did you mean \"%s\"?", e.names == 1 ? e.path : e.alias_path);
            return;
        }
    }
    if (best <= 2 || 2 * best <= strlen(word)) {
        snprintf(buf, cap, "did you mean \"%s\"?", near->name);
        return;
    }
    size_t n = (size_t)snprintf(buf, cap, "valid keys:");
    for (size_t i = 0; i < here->nkeys && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s %s", i ? "," : "", here->keys[i].name);
}
