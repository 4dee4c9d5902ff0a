/* sparse_step.h — what trainer.c's loop does differently for a sparse model
 * (sparse_logistic, fm): its data are click-log rows of hashed keys
 * (sparse_data.h), a step pulls the rows of the batch's keys only, computes
 * their gradient (sparse_model.h) and pushes it back before the dense push
 * of the bias that closes a sync round, evaluation pulls the rows of each
 * slice of a data set in turn, and the output is the tables' live rows.
 * The loop itself (modes, rounds, restarts, epochs) stays trainer.c's; the
 * dense θ of a sparse model is its bias alone, θ[0].
 *
 * Data are held two ways (data.stream): in memory, the whole training file
 * read once and this worker's shard cut from it, batches drawn in a
 * shuffled order each epoch as for the dense models; or streamed, the
 * shard read from the file a batch at a time in the file's order each
 * epoch, for logs no worker could hold (memory: a batch and a 1 MiB line
 * buffer). The test set is held in memory. */
#ifndef PS_SPARSE_STEP_H
#define PS_SPARSE_STEP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "job.h"
#include "model.h"
#include "output.h"
#include "psworker.h"

typedef struct ps_sparse_step ps_sparse_step;

/* Checks that psworker can train the job's sparse model: a sparse data
 * format, no local SGD, a table its model knows. err names the job file. */
int ps_sparse_step_check_job(const ps_job *job, ps_error *err);

/* Reads the test set and, in memory, the training set (streamed: counts
 * its rows), and allocates the model's buffers for a batch. Errors as
 * sparse_data.h's readers ("file:line: ..."), PS_ECONFIG, PS_ENOMEM. */
int ps_sparse_step_new(const ps_job *job, const volatile sig_atomic_t *stop, ps_sparse_step **out,
                       ps_error *err);

/* Frees everything and sets *sp to NULL; a NULL *sp is fine. */
void ps_sparse_step_destroy(ps_sparse_step **sp);

/* Floats of a row of the model's table: 1, or 1 + factors for fm. */
uint32_t ps_sparse_step_dim(const ps_sparse_step *s);

/* Rows of the whole training file and of the test set (0 without one). */
uint64_t ps_sparse_step_train_rows(const ps_sparse_step *s);
uint64_t ps_sparse_step_test_rows(const ps_sparse_step *s);

/* Takes worker rank's shard (data.shard, as the dense sets are cut):
 * in memory a copy of its rows (the whole set is then freed), streamed a
 * stream over them. *rows gets the shard's rows. */
int ps_sparse_step_shard(ps_sparse_step *s, uint32_t rank, uint64_t *rows, ps_error *err);

/* Makes the batch of positions [lo, hi) of an epoch, position p being
 * shard row perm[p % n] (n the shard's rows; perm NULL: row p % n, the
 * file's order, which a stream must use). A stream not at lo's row goes
 * back or on to it, reading and dropping the rows between. */
int ps_sparse_step_batch(ps_sparse_step *s, const size_t *perm, uint64_t lo, uint64_t hi,
                         ps_error *err);

/* The batch's keys and their rows, pulled from the servers. Client errors
 * keep the client's code, with ps_client_last_error's sentence in err. */
int ps_sparse_step_pull(ps_sparse_step *s, ps_client *c, ps_error *err);

/* The batch's mean log-loss into *loss and its gradients at the rows
 * pulled and the bias θ[0]: the bias's into *grad_bias, the rows' kept for
 * ps_sparse_step_push. */
int ps_sparse_step_grad(ps_sparse_step *s, float bias, float *grad_bias, double *loss,
                        ps_error *err);

/* Pushes the rows' gradients of the last ps_sparse_step_grad for round
 * `clock`, averaged over `samples`; before the dense push of the step. */
int ps_sparse_step_push(ps_sparse_step *s, ps_client *c, uint64_t clock, uint32_t samples,
                        ps_error *err);

/* The keys of the last step's batch. */
size_t ps_sparse_step_keys(const ps_sparse_step *s);

/* Log-loss, accuracy and AUC at the servers' rows and the bias, over the
 * test set (test true) or this worker's shard, pulled a slice of rows at a
 * time. A stream is read through once and left where the loop had it; its
 * scores are not kept (they could outgrow the worker), so its AUC is NAN.
 * Client errors as ps_sparse_step_grad; PS_ENOMEM; PS_EINVAL for an empty
 * set. */
int ps_sparse_step_eval(ps_sparse_step *s, ps_client *c, bool test, float bias,
                        ps_model_metrics *out, ps_error *err);

/* The model's table into dir (which exists): the live rows of every shard
 * as keys.npy (uint64, n) and rows.npy (float32, n x dim), row i of one
 * being key i's of the other, in no particular order; paged from the
 * servers (memory: a page), never held whole. *table gets what the
 * manifest says of them (output.h). PS_EIO naming the file, client errors
 * as above. Only once nothing trains. */
int ps_sparse_step_export(ps_sparse_step *s, ps_client *c, const char *dir, ps_output_table *table,
                          ps_error *err);

#endif
