/* test_shm.c — the shared-memory segment: psd's side and the worker's side
 * (both in this process, through /proc/self) see the same bytes, a segment
 * that is not the one promised is refused, and the seals keep it its size. */
#include <check.h>

#include "check_main.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "shm.h"

#define FLOATS 1000 /* not a whole page of floats, so regions are rounded up */

/* The lowest file descriptor not open now (what the next open would get). */
static int lowest_free_fd(void)
{
    int fd = dup(2);
    ck_assert_int_ge(fd, 0);
    close(fd);
    return fd;
}

static void create_segment(ps_shm *seg, size_t floats)
{
    ps_error err;
    int rc = ps_shm_create(seg, floats, &err);
    ck_assert_msg(rc == 0, "ps_shm_create: %s", err.msg);
    ck_assert(ps_shm_mapped(seg));
    ck_assert_int_ge(seg->fd, 0);
}

/* Attach is refused with code and message; s is left empty, detaching it
 * is harmless, and no descriptor was leaked. */
static void assert_attach_refused(uint32_t pid, uint32_t fd, uint64_t bytes, uint64_t token,
                                  size_t floats, int code, const char *msg)
{
    int free_fd = lowest_free_fd();
    ps_shm w;
    memset(&w, 0xab, sizeof w);
    ps_error err;
    ck_assert_int_eq(ps_shm_attach(&w, pid, fd, bytes, token, floats, &err), code);
    ck_assert_int_eq(err.code, code);
    ck_assert_str_eq(err.msg, msg);
    ck_assert(!ps_shm_mapped(&w));
    ck_assert_int_eq(w.fd, -1);
    ck_assert_ptr_null(w.grad);
    ck_assert_ptr_null(w.theta);
    ps_shm_detach(&w);
    ck_assert(!ps_shm_mapped(&w));
    ck_assert_int_eq(lowest_free_fd(), free_fd);
}

static bool regions_overlap(const float *a, const float *b, size_t n)
{
    return a < b + n && b < a + n;
}

/* [p, p + n floats) lies inside s's mapping. */
static bool inside_mapping(const ps_shm *s, const float *p, size_t n)
{
    const char *lo = s->base, *hi = lo + s->bytes;
    return (const char *)p >= lo && (const char *)(p + n) <= hi;
}

START_TEST(create_then_attach_share_the_segment)
{
    ps_shm seg, w;
    create_segment(&seg, FLOATS);
    ck_assert_uint_eq(seg.bytes, ps_shm_bytes(FLOATS));
    ck_assert_uint_eq(seg.floats, FLOATS);
    ck_assert_uint_ne(seg.token, 0);
    ps_error err;
    int rc =
        ps_shm_attach(&w, (uint32_t)getpid(), (uint32_t)seg.fd, seg.bytes, seg.token, FLOATS, &err);
    ck_assert_msg(rc == 0, "ps_shm_attach: %s", err.msg);
    ck_assert(ps_shm_mapped(&w));
    ck_assert_int_eq(w.fd, -1); /* the worker keeps no descriptor */
    ck_assert_ptr_ne(w.base, seg.base);
    ck_assert_uint_eq(w.bytes, seg.bytes);
    ck_assert_uint_eq(w.floats, FLOATS);
    ck_assert_uint_eq(w.token, seg.token);

    const ps_shm *both[] = {&seg, &w};
    for (int i = 0; i < 2; i++) {
        const ps_shm *s = both[i];
        ck_assert(inside_mapping(s, s->grad, FLOATS));
        ck_assert(inside_mapping(s, s->theta, FLOATS));
        ck_assert(!regions_overlap(s->grad, s->theta, FLOATS));
        ck_assert((void *)s->grad != s->base && (void *)s->theta != s->base); /* page 0: header */
    }
    ck_assert_int_eq((char *)w.grad - (char *)w.base, (char *)seg.grad - (char *)seg.base);
    ck_assert_int_eq((char *)w.theta - (char *)w.base, (char *)seg.theta - (char *)seg.base);

    /* θ from psd to the worker, gradients back, at both ends of each region */
    size_t at[] = {0, 1, FLOATS / 2, FLOATS - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        seg.theta[at[i]] = 1.5f + (float)at[i];
        w.grad[at[i]] = -0.25f - (float)at[i];
    }
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        ck_assert_float_eq(w.theta[at[i]], 1.5f + (float)at[i]);
        ck_assert_float_eq(seg.grad[at[i]], -0.25f - (float)at[i]);
        /* and neither write landed in the other region */
        ck_assert_float_eq(w.grad[at[i]], -0.25f - (float)at[i]);
        ck_assert_float_eq(seg.theta[at[i]], 1.5f + (float)at[i]);
    }

    ck_assert_uint_eq(ps_shm_grad_seq(&seg), 0);
    ps_shm_grad_mark(&w, 42);
    ck_assert_uint_eq(ps_shm_grad_seq(&seg), 42);
    ck_assert_uint_eq(ps_shm_grad_seq(&w), 42);
    ps_shm_grad_mark(&w, UINT64_MAX - 1);
    ck_assert_uint_eq(ps_shm_grad_seq(&seg), UINT64_MAX - 1);

    /* the worker leaving does not take the segment from psd */
    ps_shm_detach(&w);
    ck_assert(!ps_shm_mapped(&w));
    ck_assert_int_ne(fcntl(seg.fd, F_GETFD), -1);
    ck_assert_float_eq(seg.grad[FLOATS - 1], -0.25f - (float)(FLOATS - 1));
    ps_shm_detach(&seg);
}
END_TEST

START_TEST(attach_with_fewer_floats_gets_the_whole_segment)
{
    ps_shm seg, w;
    create_segment(&seg, FLOATS);
    ps_error err;
    int rc = ps_shm_attach(&w, (uint32_t)getpid(), (uint32_t)seg.fd, seg.bytes, seg.token, 1, &err);
    ck_assert_msg(rc == 0, "ps_shm_attach: %s", err.msg);
    ck_assert_uint_eq(w.floats, FLOATS);
    ck_assert_int_eq((char *)w.theta - (char *)w.base, (char *)seg.theta - (char *)seg.base);
    ps_shm_detach(&w);
    ps_shm_detach(&seg);
}
END_TEST

START_TEST(attach_refuses_the_wrong_token)
{
    ps_shm seg, other;
    create_segment(&seg, FLOATS);
    create_segment(&other, FLOATS);
    ck_assert_uint_ne(seg.token, other.token);
    char path[64], msg[128];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getpid(), seg.fd);
    snprintf(msg, sizeof msg, "%s does not hold the segment promised", path);
    assert_attach_refused((uint32_t)getpid(), (uint32_t)seg.fd, seg.bytes, other.token, FLOATS,
                          PS_EPROTO, msg);
    assert_attach_refused((uint32_t)getpid(), (uint32_t)seg.fd, seg.bytes, seg.token ^ 1, FLOATS,
                          PS_EPROTO, msg);
    ps_shm_detach(&other);
    ps_shm_detach(&seg);
}
END_TEST

START_TEST(attach_refuses_the_wrong_size)
{
    ps_shm seg;
    create_segment(&seg, FLOATS);
    char path[64], msg[128];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getpid(), seg.fd);
    uint64_t wrong[] = {seg.bytes - 4096, seg.bytes + 4096, seg.bytes - 1, 0};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        snprintf(msg, sizeof msg, "%s is not the %llu-byte segment promised", path,
                 (unsigned long long)wrong[i]);
        assert_attach_refused((uint32_t)getpid(), (uint32_t)seg.fd, wrong[i], seg.token, FLOATS,
                              PS_EPROTO, msg);
    }
    ps_shm_detach(&seg);
}
END_TEST

START_TEST(attach_refuses_more_floats_than_the_segment_has)
{
    ps_shm seg;
    create_segment(&seg, FLOATS);
    char path[64], msg[128];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getpid(), seg.fd);
    /* one more float still fits the same pages: only the header can tell */
    ck_assert_uint_eq(ps_shm_bytes(FLOATS + 1), seg.bytes);
    snprintf(msg, sizeof msg, "%s does not hold the segment promised", path);
    assert_attach_refused((uint32_t)getpid(), (uint32_t)seg.fd, seg.bytes, seg.token, FLOATS + 1,
                          PS_EPROTO, msg);
    /* many more do not fit the size promised */
    snprintf(msg, sizeof msg, "%s is not the %llu-byte segment promised", path,
             (unsigned long long)seg.bytes);
    assert_attach_refused((uint32_t)getpid(), (uint32_t)seg.fd, seg.bytes, seg.token, 10 * FLOATS,
                          PS_EPROTO, msg);
    ps_shm_detach(&seg);
}
END_TEST

START_TEST(attach_to_a_closed_fd_is_an_io_error)
{
    ps_shm seg;
    create_segment(&seg, FLOATS);
    int closed = dup(seg.fd);
    ck_assert_int_ge(closed, 0);
    close(closed);
    char msg[128];
    snprintf(msg, sizeof msg, "cannot open /proc/%d/fd/%d: %s", (int)getpid(), closed,
             strerror(ENOENT));
    assert_attach_refused((uint32_t)getpid(), (uint32_t)closed, seg.bytes, seg.token, FLOATS,
                          PS_EIO, msg);
    /* no such process (pid 0 has no /proc entry) */
    snprintf(msg, sizeof msg, "cannot open /proc/0/fd/%d: %s", seg.fd, strerror(ENOENT));
    assert_attach_refused(0, (uint32_t)seg.fd, seg.bytes, seg.token, FLOATS, PS_EIO, msg);
    ps_shm_detach(&seg);
}
END_TEST

/* A regular file holding exactly what a segment holds, but unsealed: a
 * worker must not map it, since psd (or anyone) could shrink it under the
 * worker, which would then die of SIGBUS. */
START_TEST(attach_refuses_an_unsealed_file)
{
    ps_shm seg;
    create_segment(&seg, FLOATS);
    const char *dir = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/test_shm.XXXXXX", dir != NULL && dir[0] ? dir : "/tmp");
    int fd = mkstemp(tmpl);
    ck_assert_msg(fd >= 0, "mkstemp %s: %s", tmpl, strerror(errno));
    unlink(tmpl);
    ck_assert_int_eq(ftruncate(fd, (off_t)seg.bytes), 0);
    ck_assert_int_eq(pwrite(fd, seg.base, 4096, 0), 4096); /* magic, token, floats */
    char msg[128];
    snprintf(msg, sizeof msg, "/proc/%d/fd/%d is not sealed against shrinking", (int)getpid(), fd);
    assert_attach_refused((uint32_t)getpid(), (uint32_t)fd, seg.bytes, seg.token, FLOATS, PS_EPROTO,
                          msg);
    close(fd);
    ps_shm_detach(&seg);
}
END_TEST

/* The segment keeps its size whoever opens it: a worker cannot shrink it
 * under psd (psd would read past the end: SIGBUS) nor grow it. */
START_TEST(segment_is_sealed_against_resizing)
{
    ps_shm seg;
    create_segment(&seg, FLOATS);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", seg.fd);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    errno = 0;
    ck_assert_int_eq(ftruncate(fd, (off_t)seg.bytes - 4096), -1);
    ck_assert_int_eq(errno, EPERM);
    errno = 0;
    ck_assert_int_eq(ftruncate(fd, 0), -1);
    ck_assert_int_eq(errno, EPERM);
    errno = 0;
    ck_assert_int_eq(ftruncate(fd, (off_t)seg.bytes + 4096), -1);
    ck_assert_int_eq(errno, EPERM);
    /* nor can the seals be lifted or added to */
    ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    ck_assert_int_eq(errno, EPERM);
    int seals = fcntl(fd, F_GET_SEALS);
    ck_assert_int_eq(seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    close(fd);
    /* still whole: the last float of θ is there */
    seg.theta[FLOATS - 1] = 7.0f;
    ck_assert_float_eq(seg.theta[FLOATS - 1], 7.0f);
    ps_shm_detach(&seg);
}
END_TEST

START_TEST(detach_twice_is_harmless)
{
    ps_shm seg;
    create_segment(&seg, FLOATS);
    int fd = seg.fd;
    ps_shm_detach(&seg);
    ck_assert(!ps_shm_mapped(&seg));
    ck_assert_int_eq(seg.fd, -1);
    errno = 0;
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1); /* psd's descriptor was closed */
    ck_assert_int_eq(errno, EBADF);
    /* the number is taken again by another file: a second detach leaves it */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(p[0], fd);
    ps_shm_detach(&seg);
    ck_assert(!ps_shm_mapped(&seg));
    ck_assert_int_ne(fcntl(p[0], F_GETFD), -1);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(detach_of_a_zeroed_struct_does_not_close_fd_0)
{
    if (fcntl(0, F_GETFD) == -1) /* stdin closed: give fd 0 a file to lose */
        ck_assert_int_eq(open("/dev/null", O_RDONLY), 0);
    ps_shm s;
    memset(&s, 0, sizeof s);
    ck_assert(!ps_shm_mapped(&s));
    ps_shm_detach(&s);
    ck_assert_int_ne(fcntl(0, F_GETFD), -1);
    ps_shm_detach(&s);
    ck_assert_int_ne(fcntl(0, F_GETFD), -1);
}
END_TEST

START_TEST(host_id_is_stable_and_not_empty)
{
    char a[PS_HOST_MAX], b[PS_HOST_MAX];
    memset(a, 'x', sizeof a);
    memset(b, 'y', sizeof b);
    ck_assert_int_eq(ps_shm_host_id(a, sizeof a), 0);
    ck_assert_int_eq(ps_shm_host_id(b, sizeof b), 0);
    ck_assert_uint_gt(strlen(a), 0);
    ck_assert_uint_lt(strlen(a), sizeof a);
    ck_assert_ptr_null(strchr(a, '\n'));
    ck_assert_str_eq(a, b);
}
END_TEST

START_TEST(create_refuses_zero_and_overflowing_sizes)
{
    ps_shm s;
    ps_error err;
    int free_fd = lowest_free_fd();
    ck_assert_int_eq(ps_shm_create(&s, 0, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "no shared memory for 0 floats");
    ck_assert(!ps_shm_mapped(&s));
    ck_assert_int_eq(s.fd, -1);
    ps_shm_detach(&s);
    ck_assert_uint_eq(ps_shm_bytes(SIZE_MAX), 0);
    ck_assert_int_eq(ps_shm_create(&s, SIZE_MAX, &err), PS_EINVAL);
    ck_assert(!ps_shm_mapped(&s));
    ck_assert_int_eq(s.fd, -1);
    ck_assert_int_eq(lowest_free_fd(), free_fd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shm");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, create_then_attach_share_the_segment);
    tcase_add_test(tc, attach_with_fewer_floats_gets_the_whole_segment);
    tcase_add_test(tc, attach_refuses_the_wrong_token);
    tcase_add_test(tc, attach_refuses_the_wrong_size);
    tcase_add_test(tc, attach_refuses_more_floats_than_the_segment_has);
    tcase_add_test(tc, attach_to_a_closed_fd_is_an_io_error);
    tcase_add_test(tc, attach_refuses_an_unsealed_file);
    tcase_add_test(tc, segment_is_sealed_against_resizing);
    tcase_add_test(tc, detach_twice_is_harmless);
    tcase_add_test(tc, detach_of_a_zeroed_struct_does_not_close_fd_0);
    tcase_add_test(tc, host_id_is_stable_and_not_empty);
    tcase_add_test(tc, create_refuses_zero_and_overflowing_sizes);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
