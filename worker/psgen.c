/* psgen.c — psgen, the generator of synthetic data sets for the sparse
 * models: `psgen clicks` writes click logs in the criteo format with the
 * true probability of every test row (clickgen.h), and prints the best
 * test AUC and log-loss any model could reach on them.
 * Exit: 0 done, 1 a file could not be written, 2 usage error. */
#include "args.h"
#include "clickgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct args {
    long rows;
    long test_rows; /* -1: rows / 10 */
    long seed;
    const char *out;
} args;

static void usage(FILE *out)
{
    fputs("usage: psgen clicks --rows N --out PREFIX [--test-rows M] [--seed S]\n"
          "\n"
          "Writes synthetic click logs in the criteo format (label, 13 integer and 26\n"
          "categorical fields, tab-separated): PREFIX.train.tsv, PREFIX.test.tsv and\n"
          "PREFIX.test.prob, the true click probability of each test row. Labels come\n"
          "from a hidden model with pairwise field interactions; the same arguments\n"
          "give byte-identical files on every machine. Prints the best test AUC and\n"
          "log-loss any model can reach.\n"
          "\n"
          "options:\n"
          "  -n, --rows N        training rows (required)\n"
          "  -t, --test-rows M   test rows (default: N / 10, at least 1)\n"
          "  -s, --seed S        the seed of the hidden model and the rows (default: 1)\n"
          "  -o, --out PREFIX    where the files go; missing folders are made (required)\n"
          "  -h, --help          show this help and exit\n"
          "  -V, --version       show the version and exit\n"
          "\n"
          "exit status: 0 done, 1 a file could not be written, 2 usage error\n",
          out);
}

/* Parses argv into *a (args.h's convention). PS_ARGS_GO_ON, or the exit
 * status (0 after --help or --version) with a message already printed. */
static int args_parse(int argc, char **argv, args *a)
{
    static const ps_args_option opts[] = {
        {"rows", 'n', true},
        {"test-rows", 't', true},
        {"seed", 's', true},
        {"out", 'o', true},
    };
    ps_args p;
    ps_args_init(&p, "psgen", usage, opts, PS_ARGS_COUNT(opts), argc, argv);
    memset(a, 0, sizeof *a);
    a->rows = -1;
    a->test_rows = -1;
    a->seed = 1;
    int c;
    while ((c = ps_args_next(&p)) > 0) {
        int rc = 0;
        switch (c) {
        case 'n':
            rc = ps_args_number(&p, 1, (long)PS_CLICKGEN_ROWS_MAX, &a->rows);
            break;
        case 't':
            rc = ps_args_number(&p, 1, (long)PS_CLICKGEN_TEST_ROWS_MAX, &a->test_rows);
            break;
        case 's':
            rc = ps_args_number(&p, 0, 0x7fffffffffffffffL, &a->seed);
            break;
        case 'o':
            a->out = p.value;
            break;
        }
        if (rc != 0)
            return PS_EXIT_USAGE;
    }
    if (c == PS_ARGS_EXIT)
        return p.status;
    if (p.noperands == 0)
        return ps_args_error(&p, "expected a command: clicks");
    if (strcmp(p.operands[0], "clicks") != 0)
        return ps_args_error(&p, "unknown command \"%s\": clicks", p.operands[0]);
    if (p.noperands > 1)
        return ps_args_error(&p, "unexpected argument \"%s\"", p.operands[1]);
    if (a->rows < 0)
        return ps_args_error(&p, "--rows is required");
    if (a->out == NULL)
        return ps_args_error(&p, "--out is required");
    if (a->out[0] == '\0')
        return ps_args_error(&p, "--out: an empty prefix");
    if (a->test_rows < 0)
        a->test_rows = a->rows / 10 > 0 ? a->rows / 10 : 1;
    return PS_ARGS_GO_ON;
}

static void print_summary(const args *a, const ps_clickgen_summary *s)
{
    double mb = (double)(s->train_bytes + s->test_bytes) / 1e6;
    printf("psgen: wrote %s.train.tsv (%llu rows, %.1f%% positive), %s.test.tsv (%llu rows, "
           "%.1f%% positive) and %s.test.prob, %.1f MB in %.1f s; best achievable test AUC "
           "%.4f, log-loss %.4f\n",
           a->out, (unsigned long long)s->train_rows,
           100.0 * (double)s->train_positives / (double)s->train_rows, a->out,
           (unsigned long long)s->test_rows,
           100.0 * (double)s->test_positives / (double)s->test_rows, a->out, mb, s->seconds, s->auc,
           s->logloss);
}

int main(int argc, char **argv)
{
    args a;
    int status = args_parse(argc, argv, &a);
    if (status != PS_ARGS_GO_ON)
        return status;
    ps_error err;
    ps_clickgen *g;
    if (ps_clickgen_new((uint64_t)a.seed, &g, &err) != 0) {
        fprintf(stderr, "psgen: %s\n", err.msg);
        return PS_EXIT_RUNTIME;
    }
    ps_clickgen_summary sum;
    int rc = ps_clickgen_write(g, a.out, (uint64_t)a.rows, (uint64_t)a.test_rows, &sum, &err);
    ps_clickgen_destroy(&g);
    if (rc != 0) {
        fprintf(stderr, "psgen: %s\n", err.msg);
        return PS_EXIT_RUNTIME;
    }
    print_summary(&a, &sum);
    return PS_EXIT_OK;
}
