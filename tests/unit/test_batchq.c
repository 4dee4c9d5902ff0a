/* test_batchq.c — shard 0's queue of an epoch's batches (data.assign:
 * dynamic): leases run ahead and never overlap, a push marks its batch
 * trained once (a second push of it is refused), the leases of a worker
 * that is gone come back, the epoch moves on only once every batch is
 * trained, and the queue goes through a checkpoint file and back (leases
 * back in the queue); a checkpoint without a queue still loads. */
#include <check.h>

#include "check_main.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batchq.h"
#include "checkpoint.h"
#include "msg.h"

static ps_batchq *queue(uint32_t epochs, uint32_t workers, uint64_t spe)
{
    ps_error err;
    ps_batchq *q = ps_batchq_new(epochs, workers, &err);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(ps_batchq_size(q, spe, &err), 0);
    return q;
}

START_TEST(leases_run_ahead_and_each_batch_is_trained_once)
{
    ps_batchq *q = queue(2, 2, 5);
    uint64_t first;
    uint32_t count, flags;
    ps_batchq_lease(q, 0, 2, &first, &count, &flags);
    ck_assert_uint_eq(first, 0);
    ck_assert_uint_eq(count, 2);
    ck_assert_uint_eq(flags, 0);
    ps_batchq_lease(q, 1, 2, &first, &count, &flags);
    ck_assert_uint_eq(first, 2); /* never a batch another holds */
    ck_assert_uint_eq(count, 2);
    ck_assert_int_eq(ps_batchq_done(q, 0, 0), 0);
    ck_assert_int_eq(ps_batchq_done(q, 0, 0), 1); /* a second push of it: refused */
    ck_assert_int_eq(ps_batchq_done(q, 1, 0), 1);
    ck_assert_int_eq(ps_batchq_done(q, 0, 7), PS_ERANGE); /* epoch 2 is not open */
    ck_assert_uint_eq(ps_batchq_rank_batches(q, 0), 1);
    ck_assert_uint_eq(ps_batchq_rank_held(q, 0), 1);
    /* the last free batch, then nothing free: the epoch waits on leases */
    ps_batchq_lease(q, 0, 4, &first, &count, &flags);
    ck_assert_uint_eq(first, 4);
    ck_assert_uint_eq(count, 1);
    ps_batchq_lease(q, 0, 4, &first, &count, &flags);
    ck_assert_uint_eq(count, 0);
    ck_assert_uint_eq(flags, PS_LEASE_WAIT);
    /* rank 1 is gone: its two leases come back, and go to rank 0 */
    ck_assert_uint_eq(ps_batchq_release(q, 1), 2);
    ck_assert_uint_eq(ps_batchq_rank_held(q, 1), 0);
    ps_batchq_lease(q, 0, 4, &first, &count, &flags);
    ck_assert_uint_eq(first, 2);
    ck_assert_uint_eq(count, 2);
    for (uint64_t b = 1; b < 5; b++)
        ck_assert_int_eq(ps_batchq_done(q, 0, b), 0);
    /* epoch 1 trained: epoch 2 opens, its batches are 5 .. 9 */
    ck_assert_uint_eq(ps_batchq_epoch(q), 1);
    ck_assert_int_eq(ps_batchq_done(q, 0, 3), 1); /* epoch 1's: trained already */
    ps_batchq_lease(q, 1, 3, &first, &count, &flags);
    ck_assert_uint_eq(first, 5);
    ck_assert_uint_eq(count, 3);
    for (uint64_t b = 5; b < 10; b++)
        ck_assert_int_eq(ps_batchq_done(q, b < 8 ? 1 : 0, b), 0);
    ck_assert(ps_batchq_finished(q));
    ck_assert_uint_eq(ps_batchq_trained(q), 10);
    ck_assert_uint_eq(ps_batchq_rank_batches(q, 0) + ps_batchq_rank_batches(q, 1), 10);
    ps_batchq_lease(q, 0, 1, &first, &count, &flags);
    ck_assert_uint_eq(count, 0);
    ck_assert_uint_eq(flags, PS_LEASE_END);
    ps_batchq_destroy(&q);
    ck_assert_ptr_null(q);
}
END_TEST

START_TEST(a_rank_holds_at_most_the_lease_limit_and_the_size_is_fixed)
{
    ps_batchq *q = queue(1, 1, 100);
    uint64_t first;
    uint32_t count, flags;
    ps_batchq_lease(q, 0, 1000, &first, &count, &flags);
    ck_assert_uint_eq(count, PS_BATCHQ_LEASE_MAX);
    ps_batchq_lease(q, 0, 1, &first, &count, &flags);
    ck_assert_uint_eq(count, 0);
    ck_assert_uint_eq(flags, 0);
    ps_error err;
    ck_assert_int_eq(ps_batchq_size(q, 100, &err), 0);
    ck_assert_int_eq(ps_batchq_size(q, 99, &err), PS_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "99 batches an epoch"));
    ps_batchq_destroy(&q);
}
END_TEST

START_TEST(the_queue_goes_through_a_checkpoint_and_its_leases_come_back)
{
    ps_batchq *q = queue(3, 2, 4);
    uint64_t first;
    uint32_t count, flags;
    for (uint64_t b = 0; b < 4; b++) /* epoch 1, rank 0 */
        ck_assert_int_eq(ps_batchq_done(q, 0, b), 0);
    ps_batchq_lease(q, 1, 3, &first, &count, &flags); /* 4, 5, 6 */
    ck_assert_int_eq(ps_batchq_done(q, 1, 5), 0);
    char dir[] = "/tmp/test_batchq_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ps_ckpt_folder f;
    ps_error err;
    ck_assert_int_eq(ps_ckpt_folder_init(&f, dir, 2, false, &err), 0);
    float theta[3] = {1, 2, 3};
    ps_ckpt_array a = {"theta", theta, 3};
    size_t n = ps_batchq_bytes(q);
    unsigned char *buf = malloc(n);
    ps_batchq_save(q, buf);
    ps_ckpt_meta meta = {.job = "bq", .key_hi = 3, .version = 9, .queue = buf, .queue_bytes = n};
    ck_assert_int_eq(ps_checkpoint_write(&f, &meta, &a, 1, NULL, 0, NULL, &err), 0);
    /* a checkpoint without a queue, as psd wrote before queues: older */
    ps_ckpt_meta old = {.job = "bq", .key_hi = 3, .version = 8};
    ck_assert_int_eq(ps_checkpoint_write(&f, &old, &a, 1, NULL, 0, NULL, &err), 0);
    ps_ckpt_folder_fini(&f);
    free(buf);

    ck_assert_int_eq(ps_ckpt_folder_init(&f, dir, 2, false, &err), 0);
    ps_ckpt_meta got;
    memset(theta, 0, sizeof theta);
    ck_assert_int_eq(ps_checkpoint_load(&f, "bq", 0, 0, 3, &a, 1, &got, NULL, 0, NULL, &err), 0);
    ck_assert_uint_eq(got.version, 9);
    ck_assert_uint_eq(got.queue_bytes, n);
    ps_batchq *r = ps_batchq_new(3, 2, &err);
    ck_assert_int_eq(ps_batchq_load(r, got.queue, got.queue_bytes, &err), 0);
    ck_assert_uint_eq(ps_batchq_epoch(r), 1);
    ck_assert_uint_eq(ps_batchq_trained(r), 5);
    ck_assert_uint_eq(ps_batchq_rank_batches(r, 0), 4);
    ck_assert_uint_eq(ps_batchq_rank_batches(r, 1), 1);
    ck_assert_uint_eq(ps_batchq_rank_held(r, 1), 0); /* its leases are back */
    ps_batchq_lease(r, 0, 8, &first, &count, &flags);
    ck_assert_uint_eq(first, 4);
    ck_assert_uint_eq(count, 1); /* 4, then 5 is trained */
    ck_assert_int_eq(ps_batchq_done(r, 0, 5), 1);
    /* a queue of another job's epochs, or bytes that are not one: refused */
    ps_batchq *other = ps_batchq_new(4, 2, &err);
    ck_assert_int_eq(ps_batchq_load(other, got.queue, got.queue_bytes, &err), PS_EPROTO);
    ck_assert_int_eq(ps_batchq_load(other, "PSDBQ001", 8, &err), PS_EPROTO);
    ps_batchq_destroy(&other);
    ps_batchq_destroy(&r);
    ps_ckpt_folder_fini(&f);

    /* the older file alone still loads, without a queue */
    char path[600];
    snprintf(path, sizeof path, "%s/bq-shard0-00000000000000000009.ckpt", dir);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(ps_ckpt_folder_init(&f, dir, 2, false, &err), 0);
    ck_assert_int_eq(ps_checkpoint_load(&f, "bq", 0, 0, 3, &a, 1, &got, NULL, 0, NULL, &err), 0);
    ck_assert_uint_eq(got.version, 8);
    ck_assert_uint_eq(got.queue_bytes, 0);
    ps_ckpt_folder_fini(&f);
    snprintf(path, sizeof path, "%s/bq-shard0-00000000000000000008.ckpt", dir);
    unlink(path);
    rmdir(dir);
    ps_batchq_destroy(&q);
}
END_TEST

static Suite *batchq_suite(void)
{
    Suite *s = suite_create("batchq");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, leases_run_ahead_and_each_batch_is_trained_once);
    tcase_add_test(tc, a_rank_holds_at_most_the_lease_limit_and_the_size_is_fixed);
    tcase_add_test(tc, the_queue_goes_through_a_checkpoint_and_its_leases_come_back);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(batchq_suite());
}
