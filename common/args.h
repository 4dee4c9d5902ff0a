/* args.h — the command line of every psd program (psd, psworker, psrun,
 * psctl), one convention: getopt_long over a table of options with --help
 * and --version added, every usage error one line "prog: what is wrong
 * (try 'prog --help')" on stderr and exit status 2, and numbers read
 * strictly with their range in the message. libc only. */
#ifndef PS_ARGS_H
#define PS_ARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "error.h"

/* The exit statuses of every program. */
enum {
    PS_EXIT_OK = 0,
    PS_EXIT_RUNTIME = 1,    /* a runtime error: cannot bind, a peer failed */
    PS_EXIT_USAGE = 2,      /* a usage or job-file error */
    PS_EXIT_INCOMPLETE = 3, /* the job ended with a rank's data not trained to the end */
};

/* What a program's argument parser returns to let main go on; any other
 * value is the exit status to leave with (0 after --help or --version). */
#define PS_ARGS_GO_ON (-1)

/* Keys from here on are long options without a short letter. */
#define PS_ARGS_LONG_ONLY 256

#define PS_ARGS_OPTIONS_MAX 16

/* One option of a program: --name, and -key too when key is a letter
 * (below PS_ARGS_LONG_ONLY). 'h' and 'V' are --help and --version, which
 * every program has and ps_args_next answers itself. */
typedef struct ps_args_option {
    const char *name; /* "shard" for --shard */
    int key;          /* 's', or PS_ARGS_LONG_ONLY + n */
    bool has_value;   /* --shard I: the value is the next word or after '=' */
} ps_args_option;

#define PS_ARGS_COUNT(opts) (sizeof(opts) / sizeof((opts)[0]))

/* One parse of one argv. Fields below "results" are the caller's to read;
 * out and err (stdout and stderr) may be pointed elsewhere after init. */
typedef struct ps_args {
    const char *prog;         /* "psd": the start of every message */
    void (*usage)(FILE *out); /* writes the --help text */
    FILE *out, *err;
    int argc;
    char **argv;
    const ps_args_option *opts;
    size_t nopts;
    struct option longopts[PS_ARGS_OPTIONS_MAX + 3];
    char shortopts[3 * PS_ARGS_OPTIONS_MAX + 8];
    /* results */
    const char *value; /* the value of the option ps_args_next returned */
    char name[64];     /* that option's long form, "--shard", for messages */
    int status;        /* the exit status once ps_args_next said PS_ARGS_EXIT */
    char **operands;   /* once ps_args_next said PS_ARGS_END: the words */
    int noperands;     /* that are not options, in their order */
} ps_args;

/* ps_args_next's answers besides an option's key. */
#define PS_ARGS_END  0    /* no option left; the operands are in p->operands */
#define PS_ARGS_EXIT (-1) /* leave with p->status: --help, --version, an error */

/* Prepares a parse of argv with the options opts[0..nopts) (the table must
 * outlive p) and the usage text of --help. Starts getopt afresh, so a
 * program (or a test) may parse more than once. */
void ps_args_init(ps_args *p, const char *prog, void (*usage)(FILE *out),
                  const ps_args_option *opts, size_t nopts, int argc, char **argv);

/* The key of the next option, its value in p->value; PS_ARGS_END when no
 * option is left (options and operands may mix, as GNU programs allow; "--"
 * ends the options); PS_ARGS_EXIT after --help (usage on p->out, status
 * 0), --version ("prog X.Y.Z" on p->out, status 0), or an unknown option,
 * a missing value or a value given to a flag (said, status 2). */
int ps_args_next(ps_args *p);

/* Says "prog: <fmt ...> (try 'prog --help')" on p->err, one line, and
 * returns PS_EXIT_USAGE, the status to leave with. */
int ps_args_error(const ps_args *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads text as a whole decimal number in [lo, hi]: digits only, a '-'
 * first only when lo < 0, no spaces. 0, or PS_EINVAL with "must be a
 * number from lo to hi, got text" in err (", which is negative" after a
 * negative number where lo >= 0). */
int ps_args_number_parse(const char *text, long lo, long hi, long *out, ps_error *err);

/* The value of the current option as a number in [lo, hi] (see above): 0,
 * or PS_EXIT_USAGE after saying "prog: --name: must be a number from lo to
 * hi, got text (try 'prog --help')". */
int ps_args_number(const ps_args *p, long lo, long hi, long *out);

/* The end of a program that takes --config and no operand: c is what
 * ps_args_next last returned. p->status for PS_ARGS_EXIT; the usage error
 * (2) for an operand or a missing config; else PS_ARGS_GO_ON. */
int ps_args_end_config(const ps_args *p, int c, const char *config);

#endif
