/* psgen.c — psgen, the generator of synthetic data sets for the sparse
 * models and their reference: `psgen clicks` writes click logs in the
 * criteo format with the true probability of every test row (clickgen.h),
 * and prints the best test AUC and log-loss any model could reach on them;
 * `psgen libsvm` writes criteo or libsvm64 files in liblinear's format with
 * exactly the keys psworker trains on (liblinear_export.h), numbered
 * densely across the files given.
 * Exit: 0 done, 1 a file could not be read or written, 2 usage error. */
#include "args.h"
#include "clickgen.h"
#include "liblinear_export.h"
#include "report_file.h"
#include "stdout_guard.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum command { CMD_CLICKS, CMD_LIBSVM } command;

typedef struct args {
    command cmd;
    /* clicks */
    long rows;
    long test_rows; /* -1: rows / 10 */
    long seed;
    const char *out;
    /* libsvm */
    ps_data_format format;
    const char *out_dir;
    char **inputs;
    int ninputs;
} args;

static void usage(FILE *out)
{
    fputs("usage: psgen clicks --rows N --out PREFIX [--test-rows M] [--seed S]\n"
          "       psgen libsvm --format FORMAT --out-dir DIR FILE...\n"
          "\n"
          "psgen clicks writes synthetic click logs in the criteo format (label, 13\n"
          "integer and 26 categorical fields, tab-separated): PREFIX.train.tsv,\n"
          "PREFIX.test.tsv and PREFIX.test.prob, the true click probability of each\n"
          "test row. Labels come from a hidden model with pairwise field interactions;\n"
          "the same arguments give byte-identical files on every machine. Prints the\n"
          "best test AUC and log-loss any model can reach.\n"
          "\n"
          "psgen libsvm writes each FILE (criteo or libsvm64, read as psworker reads\n"
          "it) as DIR/<its name>.liblinear for liblinear's train and predict: each\n"
          "distinct hashed key psworker trains on becomes a feature number 1, 2, 3, ...\n"
          "in the order keys first appear in the FILEs as given. Give the training\n"
          "file first: the test file then shares its numbers, and keys only in the test\n"
          "file get numbers above them, which liblinear's predict ignores. Prints each\n"
          "file's rows and distinct keys.\n"
          "\n"
          "options:\n"
          "  -n, --rows N          clicks: training rows (required)\n"
          "  -t, --test-rows M     clicks: test rows (default: N / 10, at least 1)\n"
          "  -s, --seed S          clicks: the seed of the hidden model and the rows\n"
          "                        (default: 1)\n"
          "  -o, --out PREFIX      clicks: where the files go; missing folders are made\n"
          "                        (required)\n"
          "  -f, --format FORMAT   libsvm: criteo or libsvm64, as a job's data.format\n"
          "                        (required)\n"
          "  -d, --out-dir DIR     libsvm: where the files go; made when missing (required)\n"
          "  -h, --help            show this help and exit\n"
          "  -V, --version         show the version and exit\n"
          "\n"
          "exit status: 0 done, 1 a file could not be read or written, 2 usage error\n",
          out);
}

/* The options given, for refusing one command's options to the other. */
enum {
    GAVE_ROWS = 1,
    GAVE_TEST_ROWS = 2,
    GAVE_SEED = 4,
    GAVE_OUT = 8,
    GAVE_FORMAT = 16,
    GAVE_OUT_DIR = 32
};

/* The first option of mask given in gave, by its long name; NULL when none. */
static const char *first_given(unsigned gave, unsigned mask)
{
    static const char *const names[] = {"--rows", "--test-rows", "--seed",
                                        "--out",  "--format",    "--out-dir"};
    for (unsigned i = 0; i < PS_ARGS_COUNT(names); i++)
        if (gave & mask & (1u << i))
            return names[i];
    return NULL;
}

static int clicks_end(ps_args *p, args *a, unsigned gave)
{
    const char *other = first_given(gave, GAVE_FORMAT | GAVE_OUT_DIR);
    if (other != NULL)
        return ps_args_error(p, "%s is an option of psgen libsvm, not clicks", other);
    if (p->noperands > 1)
        return ps_args_error(p, "unexpected argument \"%s\"", p->operands[1]);
    if (a->rows < 0)
        return ps_args_error(p, "--rows is required");
    if (a->out == NULL)
        return ps_args_error(p, "--out is required");
    if (a->out[0] == '\0')
        return ps_args_error(p, "--out: an empty prefix");
    if (a->test_rows < 0)
        a->test_rows = a->rows / 10 > 0 ? a->rows / 10 : 1;
    return PS_ARGS_GO_ON;
}

/* path without its folders: the name its output is named after. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

static int libsvm_end(ps_args *p, args *a, unsigned gave)
{
    const char *other = first_given(gave, GAVE_ROWS | GAVE_TEST_ROWS | GAVE_SEED | GAVE_OUT);
    if (other != NULL)
        return ps_args_error(p, "%s is an option of psgen clicks, not libsvm", other);
    if (!(gave & GAVE_FORMAT))
        return ps_args_error(p, "--format is required");
    if (a->out_dir == NULL)
        return ps_args_error(p, "--out-dir is required");
    if (a->out_dir[0] == '\0')
        return ps_args_error(p, "--out-dir: an empty path");
    a->inputs = p->operands + 1;
    a->ninputs = p->noperands - 1;
    if (a->ninputs == 0)
        return ps_args_error(p, "expected the files to convert");
    /* two inputs of one name would write one output twice */
    for (int i = 0; i < a->ninputs; i++) {
        const char *bi = base_name(a->inputs[i]);
        if (bi[0] == '\0')
            return ps_args_error(p, "\"%s\" is not a file name", a->inputs[i]);
        for (int j = 0; j < i; j++)
            if (strcmp(bi, base_name(a->inputs[j])) == 0)
                return ps_args_error(p, "\"%s\" and \"%s\" would both be written as %s.liblinear",
                                     a->inputs[j], a->inputs[i], bi);
    }
    return PS_ARGS_GO_ON;
}

/* Parses argv into *a (args.h's convention). PS_ARGS_GO_ON, or the exit
 * status (0 after --help or --version) with a message already printed. */
static int args_parse(int argc, char **argv, args *a)
{
    static const ps_args_option opts[] = {
        {"rows", 'n', true}, {"test-rows", 't', true}, {"seed", 's', true},
        {"out", 'o', true},  {"format", 'f', true},    {"out-dir", 'd', true},
    };
    ps_args p;
    ps_args_init(&p, "psgen", usage, opts, PS_ARGS_COUNT(opts), argc, argv);
    memset(a, 0, sizeof *a);
    a->rows = -1;
    a->test_rows = -1;
    a->seed = 1;
    unsigned gave = 0;
    int c;
    while ((c = ps_args_next(&p)) > 0) {
        int rc = 0;
        switch (c) {
        case 'n':
            rc = ps_args_number(&p, 1, (long)PS_CLICKGEN_ROWS_MAX, &a->rows);
            gave |= GAVE_ROWS;
            break;
        case 't':
            rc = ps_args_number(&p, 1, (long)PS_CLICKGEN_TEST_ROWS_MAX, &a->test_rows);
            gave |= GAVE_TEST_ROWS;
            break;
        case 's':
            rc = ps_args_number(&p, 0, 0x7fffffffffffffffL, &a->seed);
            gave |= GAVE_SEED;
            break;
        case 'o':
            a->out = p.value;
            gave |= GAVE_OUT;
            break;
        case 'f':
            if (strcmp(p.value, "criteo") == 0)
                a->format = PS_FORMAT_CRITEO;
            else if (strcmp(p.value, "libsvm64") == 0)
                a->format = PS_FORMAT_LIBSVM64;
            else
                rc = ps_args_error(&p, "--format: criteo or libsvm64, got \"%s\"", p.value);
            gave |= GAVE_FORMAT;
            break;
        case 'd':
            a->out_dir = p.value;
            gave |= GAVE_OUT_DIR;
            break;
        }
        if (rc != 0)
            return PS_EXIT_USAGE;
    }
    if (c == PS_ARGS_EXIT)
        return p.status;
    if (p.noperands == 0)
        return ps_args_error(&p, "expected a command: clicks or libsvm");
    if (strcmp(p.operands[0], "clicks") == 0) {
        a->cmd = CMD_CLICKS;
        return clicks_end(&p, a, gave);
    }
    if (strcmp(p.operands[0], "libsvm") == 0) {
        a->cmd = CMD_LIBSVM;
        return libsvm_end(&p, a, gave);
    }
    return ps_args_error(&p, "unknown command \"%s\": clicks or libsvm", p.operands[0]);
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

/* An output file that is there already must be one psgen may replace
 * (report_file.h): a FIFO or a device by that name is refused before
 * anything is written. A new name needs no check: psgen makes its folder.
 * 0, or PS_EXIT_USAGE with one line said. */
static int output_check(const char *path)
{
    struct stat st;
    ps_error err;
    if (lstat(path, &st) != 0 && errno == ENOENT)
        return 0;
    if (ps_report_file_check(path, &err) != 0) {
        fprintf(stderr, "psgen: %s\n", err.msg);
        return PS_EXIT_USAGE;
    }
    return 0;
}

static int clicks(const args *a)
{
    static const char *const suffix[] = {".train.tsv", ".test.tsv", ".test.prob"};
    for (size_t i = 0; i < 3; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s%s", a->out, suffix[i]) >= (int)sizeof path) {
            fprintf(stderr, "psgen: %s%s: path too long\n", a->out, suffix[i]);
            return PS_EXIT_USAGE;
        }
        int status = output_check(path);
        if (status != 0)
            return status;
    }
    ps_error err;
    ps_clickgen *g;
    if (ps_clickgen_new((uint64_t)a->seed, &g, &err) != 0) {
        fprintf(stderr, "psgen: %s\n", err.msg);
        return PS_EXIT_RUNTIME;
    }
    ps_clickgen_summary sum;
    int rc = ps_clickgen_write(g, a->out, (uint64_t)a->rows, (uint64_t)a->test_rows, &sum, &err);
    ps_clickgen_destroy(&g);
    if (rc != 0) {
        fprintf(stderr, "psgen: %s\n", err.msg);
        return PS_EXIT_RUNTIME;
    }
    print_summary(a, &sum);
    return PS_EXIT_OK;
}

/* One line a file as it is done, so a long conversion shows its progress:
 * "psgen: wrote DIR/x.liblinear (R rows, P% positive, F features, K distinct
 * keys, N new, T s)". */
static int libsvm(const args *a)
{
    ps_error err;
    if (ps_path_mkdirs(a->out_dir, 0777) != 0) {
        fprintf(stderr, "psgen: %s: %s\n", a->out_dir, strerror(errno));
        return PS_EXIT_RUNTIME;
    }
    for (int i = 0; i < a->ninputs; i++) {
        char out[PATH_MAX];
        if (snprintf(out, sizeof out, "%s/%s.liblinear", a->out_dir, base_name(a->inputs[i])) <
                (int)sizeof out &&
            output_check(out) != 0)
            return PS_EXIT_USAGE;
    }
    ps_liblinear_export *x;
    if (ps_liblinear_export_new(a->format, &x, &err) != 0) {
        fprintf(stderr, "psgen: %s\n", err.msg);
        return PS_EXIT_RUNTIME;
    }
    int status = PS_EXIT_OK;
    for (int i = 0; i < a->ninputs && status == PS_EXIT_OK; i++) {
        char out[PATH_MAX];
        if (snprintf(out, sizeof out, "%s/%s.liblinear", a->out_dir, base_name(a->inputs[i])) >=
            (int)sizeof out) {
            fprintf(stderr, "psgen: %s/%s.liblinear: path too long\n", a->out_dir,
                    base_name(a->inputs[i]));
            status = PS_EXIT_RUNTIME;
            break;
        }
        ps_liblinear_stats st;
        if (ps_liblinear_export_file(x, a->inputs[i], out, NULL, &st, &err) != 0) {
            fprintf(stderr, "psgen: %s\n", err.msg);
            status = PS_EXIT_RUNTIME;
            break;
        }
        printf("psgen: wrote %s (%llu rows, %.1f%% positive, %llu features, %llu distinct keys, "
               "%llu new, %.1f s)\n",
               out, (unsigned long long)st.rows, 100.0 * (double)st.positives / (double)st.rows,
               (unsigned long long)st.features, (unsigned long long)st.keys,
               (unsigned long long)st.new_keys, st.seconds);
        ps_stdout_guard_flush(); /* a line lost is said at exit (stdout_guard.h) */
    }
    ps_liblinear_export_destroy(&x);
    return status;
}

int main(int argc, char **argv)
{
    ps_stdout_guard_install("psgen");
    args a;
    int status = args_parse(argc, argv, &a);
    if (status != PS_ARGS_GO_ON)
        return status;
    return a.cmd == CMD_CLICKS ? clicks(&a) : libsvm(&a);
}
