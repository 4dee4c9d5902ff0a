/* example_fit_line.c — the libpsworker example of docs/library.md: a
 * program of your own that fits y = 3x + 1 against psd
 * (config/examples/line.yaml), computing its gradients itself.
 * Usage: example_fit_line ENDPOINT [RANK WORKERS] */
#include <psd/psworker.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s ENDPOINT [RANK WORKERS]\n", argv[0]);
        return 2;
    }
    int rank = argc > 2 ? atoi(argv[2]) : 0, workers = argc > 3 ? atoi(argv[3]) : 1;
    const char *servers[] = {argv[1]};
    ps_client_opts opts;
    ps_client_opts_init(&opts); /* sets opts.size: the library knows which fields we have */
    opts.job = "line";
    opts.servers = servers;
    opts.num_servers = 1;
    opts.rank = rank;
    ps_client *c;
    char err[256];
    int rc = ps_client_open(&opts, &c, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "example: %s (%s)\n", err, ps_strerror(rc));
        return 1;
    }
    float theta[2], grad[2]; /* θ = [w, b] of the job's linear model */
    for (uint64_t round = 0; round < 200 && rc == 0; round++) {
        rc = ps_client_pull(c, round, theta, 2, NULL); /* sync: θ after round-1 */
        if (rc != 0)
            break;
        grad[0] = grad[1] = 0;
        uint32_t n = 0;
        for (int i = rank; i < 100; i += workers, n++) { /* this worker's points */
            float x = (float)i / 100.0f, r = theta[0] * x + theta[1] - (3 * x + 1);
            grad[0] += 2 * r * x; /* d/dw of r² */
            grad[1] += 2 * r;
        }
        grad[0] /= (float)n;
        grad[1] /= (float)n;
        rc = ps_client_push(c, round, grad, 2, n, NULL);
    }
    if (rc == 0)
        rc = ps_client_pull(c, 200, theta, 2, NULL);
    if (rc != 0) {
        fprintf(stderr, "example: %s\n", ps_client_last_error(c));
        ps_client_close(&c);
        return 1;
    }
    printf("w = %.3f, b = %.3f\n", theta[0], theta[1]);
    rc = ps_client_close(&c);
    if (fflush(stdout) != 0 || ferror(stdout)) { /* a full disk, a closed stdout */
        perror("example: standard output");
        return 1;
    }
    return rc == 0 ? 0 : 1;
}
