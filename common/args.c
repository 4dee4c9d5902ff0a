/* args.c — the command-line convention of args.h: getopt_long set up from a
 * program's table of options, --help and --version answered here, and every
 * usage error said in one shape. getopt's state (optind, optarg, optopt) is
 * libc's; a parse starts it afresh. */
#include "args.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define KEY_HELP    'h'
#define KEY_VERSION 'V'

void ps_args_init(ps_args *p, const char *prog, void (*usage)(FILE *out),
                  const ps_args_option *opts, size_t nopts, int argc, char **argv)
{
    assert(nopts <= PS_ARGS_OPTIONS_MAX);
    memset(p, 0, sizeof *p);
    p->prog = prog;
    p->usage = usage;
    p->out = stdout;
    p->err = stderr;
    p->argc = argc;
    p->argv = argv;
    p->opts = opts;
    p->nopts = nopts;
    /* ':' first: a missing value is told apart from an unknown option, and
     * getopt prints nothing of its own */
    size_t n = 0;
    p->shortopts[n++] = ':';
    for (size_t i = 0; i < nopts; i++) {
        assert(opts[i].key != KEY_HELP && opts[i].key != KEY_VERSION && opts[i].key > 0);
        p->longopts[i] = (struct option){
            opts[i].name, opts[i].has_value ? required_argument : no_argument, NULL, opts[i].key};
        if (opts[i].key < PS_ARGS_LONG_ONLY) {
            p->shortopts[n++] = (char)opts[i].key;
            if (opts[i].has_value)
                p->shortopts[n++] = ':';
        }
    }
    p->longopts[nopts] = (struct option){"help", no_argument, NULL, KEY_HELP};
    p->longopts[nopts + 1] = (struct option){"version", no_argument, NULL, KEY_VERSION};
    memcpy(p->shortopts + n, "hV", 3);
    opterr = 0;
    optind = 0; /* glibc: 0 starts a new scan, its own state included */
}

/* The long form of the option with this key, "--shard", into p->name. */
static void name_of(ps_args *p, int key)
{
    for (size_t i = 0; i < p->nopts + 2; i++) {
        if (p->longopts[i].val == key) {
            snprintf(p->name, sizeof p->name, "--%s", p->longopts[i].name);
            return;
        }
    }
    snprintf(p->name, sizeof p->name, "-%c", key);
}

/* A long option getopt did not take: unknown, or short for several
 * ("--c" for --config and --count), which are named. */
static int long_unknown(const ps_args *p, const char *word, size_t len)
{
    char names[256] = "";
    size_t used = 0;
    int n = 0;
    for (size_t i = 0; i < p->nopts + 2; i++) {
        const char *name = p->longopts[i].name;
        if (strncmp(name, word, len) != 0 || used >= sizeof names)
            continue;
        used += (size_t)snprintf(names + used, sizeof names - used, "%s--%s", n ? ", " : "", name);
        n++;
    }
    if (n > 1)
        return ps_args_error(p, "option \"--%.*s\" is ambiguous: %s", (int)len, word, names);
    return ps_args_error(p, "unknown option \"--%.*s\"", (int)len, word);
}

/* getopt's '?' or ':' as one line; the word at fault is argv[optind - 1]
 * for a long option, optopt for a short one. */
static int usage_error(ps_args *p, int c)
{
    const char *word = optind > 0 && optind <= p->argc ? p->argv[optind - 1] : "";
    bool is_long = strncmp(word, "--", 2) == 0;
    if (c == ':') {
        name_of(p, optopt);
        return ps_args_error(p, "%s needs a value", p->name);
    }
    if (is_long && optopt != 0) { /* --flag=value */
        name_of(p, optopt);
        return ps_args_error(p, "%s takes no value", p->name);
    }
    if (is_long)
        return long_unknown(p, word + 2, strcspn(word + 2, "="));
    return ps_args_error(p, "unknown option \"-%c\"", optopt);
}

int ps_args_next(ps_args *p)
{
    int c = getopt_long(p->argc, p->argv, p->shortopts, p->longopts, NULL);
    p->value = optarg;
    switch (c) {
    case -1:
        p->operands = p->argv + optind;
        p->noperands = p->argc - optind;
        return PS_ARGS_END;
    case KEY_HELP:
        p->usage(p->out);
        p->status = PS_EXIT_OK;
        return PS_ARGS_EXIT;
    case KEY_VERSION:
        fprintf(p->out, "%s %s\n", p->prog, PS_VERSION_STRING);
        p->status = PS_EXIT_OK;
        return PS_ARGS_EXIT;
    case '?':
    case ':':
        p->status = usage_error(p, c);
        return PS_ARGS_EXIT;
    default:
        name_of(p, c);
        return c;
    }
}

int ps_args_error(const ps_args *p, const char *fmt, ...)
{
    char what[PS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    fprintf(p->err, "%s: %s (try '%s --help')\n", p->prog, what, p->prog);
    return PS_EXIT_USAGE;
}

int ps_args_number_parse(const char *text, long lo, long hi, long *out, ps_error *err)
{
    const char *digits = text[0] == '-' && lo < 0 ? text + 1 : text;
    char *end = NULL;
    errno = 0;
    long v = digits[0] >= '0' && digits[0] <= '9' ? strtol(text, &end, 10) : 0;
    if (end == NULL || *end != '\0' || errno != 0 || v < lo || v > hi) {
        /* "-1" where no number below 0 is: a number, but a negative one */
        bool negative = lo >= 0 && text[0] == '-' && text[1] >= '0' && text[1] <= '9' &&
                        text[strspn(text + 1, "0123456789") + 1] == '\0' &&
                        text[strspn(text + 1, "0") + 1] != '\0';
        return ps_error_set(err, PS_EINVAL, "must be a number from %ld to %ld, got %s%s", lo, hi,
                            text[0] ? text : "\"\"", negative ? ", which is negative" : "");
    }
    *out = v;
    return 0;
}

int ps_args_end_config(const ps_args *p, int c, const char *config)
{
    if (c == PS_ARGS_EXIT)
        return p->status;
    if (p->noperands > 0)
        return ps_args_error(p, "unexpected argument \"%s\"", p->operands[0]);
    if (config == NULL)
        return ps_args_error(p, "--config is required");
    return PS_ARGS_GO_ON;
}

int ps_args_number(const ps_args *p, long lo, long hi, long *out)
{
    ps_error err;
    if (ps_args_number_parse(p->value, lo, hi, out, &err) != 0)
        return ps_args_error(p, "%s: %s", p->name, err.msg);
    return 0;
}
