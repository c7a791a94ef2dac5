/*
 * Echo load generator for bench/echo.ts, a port of crates/loadgen (same
 * options, same JSON line) that `npm run bench` builds with `cc -O2` in its
 * setup, so that the benchmark needs no Rust toolchain.
 *
 * `--clients` loopback connections, each with one `--size`-byte message in
 * flight (the seeds' "client-N say hello K", padded), expecting it back
 * upper-cased (or as is with `--expect echo`). One thread, one
 * level-triggered epoll set, so that it costs as little CPU as a client can:
 * the server under test should be the bottleneck.
 *
 * It runs `--warmup` seconds unmeasured, then `--seconds` measured, then
 * stops by itself (closing every connection) and prints one JSON line:
 * messages, msgs/s, latency percentiles in microseconds, errors. A hard
 * deadline of the run time again plus 5 s ends it even if the server stalls.
 *
 * usage: loadgen --port P [--host 127.0.0.1] [--clients 500] [--size 32]
 *                [--seconds 5] [--warmup 1] [--expect upper|echo]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 1024
#define MAX_US 1000000

typedef struct {
    int fd;
    int done;
    int bad;
    size_t received;
    uint64_t counter;
    double sent_at;
    char message[MAX_SIZE];
    char expected[MAX_SIZE];
} client_t;

static size_t size = 32;
static int upper = 1;

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [--clients 500] [--size 32] [--seconds 5] "
            "[--warmup 1] [--expect upper|echo]\n");
    exit(2);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double number(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0) usage();
    return v;
}

static void compose(client_t *c, size_t id) {
    char text[MAX_SIZE + 64];
    int n = snprintf(text, sizeof text, "client-%zu say hello %llu", id, (unsigned long long)c->counter);
    if ((size_t)n < size) memset(text + n, '.', size - (size_t)n);
    memcpy(c->message, text, size);
    for (size_t i = 0; i < size; i++) {
        char ch = text[i];
        c->expected[i] = (upper && ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    }
    c->received = 0;
    c->bad = 0;
}

/* A message far smaller than an empty send buffer goes out whole. */
static int send_message(client_t *c) {
    c->sent_at = now_s();
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(c->fd, c->message + off, size - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

static uint64_t percentile(const uint64_t *buckets, uint64_t count, double p) {
    double t = (double)count * p;
    uint64_t target = (uint64_t)t;
    if ((double)target < t) target++;
    if (target < 1) target = 1;
    uint64_t seen = 0;
    for (uint64_t us = 0; us <= MAX_US; us++) {
        seen += buckets[us];
        if (seen >= target) return us;
    }
    return MAX_US;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = -1;
    size_t clients_n = 500;
    double seconds = 5, warmup = 1;
    if ((argc - 1) % 2 != 0) usage();
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *flag = argv[i], *value = argv[i + 1];
        if (!strcmp(flag, "--host")) host = value;
        else if (!strcmp(flag, "--port")) port = (long)number(value);
        else if (!strcmp(flag, "--clients")) clients_n = (size_t)number(value);
        else if (!strcmp(flag, "--size")) size = (size_t)number(value);
        else if (!strcmp(flag, "--seconds")) seconds = number(value);
        else if (!strcmp(flag, "--warmup")) warmup = number(value);
        else if (!strcmp(flag, "--expect")) upper = !strcmp(value, "upper");
        else usage();
    }
    if (port < 0 || port > 65535 || clients_n == 0 || size == 0 || size > MAX_SIZE || !(seconds > 0) || !(warmup >= 0))
        usage();

    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) usage();

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("loadgen: epoll_create1");
        return 1;
    }
    client_t *clients = calloc(clients_n, sizeof *clients);
    uint64_t *buckets = calloc(MAX_US + 1, sizeof *buckets);
    if (!clients || !buckets) {
        perror("loadgen: calloc");
        return 1;
    }
    int one = 1;
    for (size_t id = 0; id < clients_n; id++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
            fprintf(stderr, "loadgen: connect %s:%ld: %s\n", host, port, strerror(errno));
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = id};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("loadgen: epoll_ctl");
            return 1;
        }
        clients[id].fd = fd;
        compose(&clients[id], id);
    }

    double start = now_s();
    double measure_from = start + warmup;
    double end = measure_from + seconds;
    double hard_deadline = end + warmup + seconds + 5;
    uint64_t count = 0, errors = 0;
    size_t active = clients_n;
    for (size_t id = 0; id < clients_n; id++) {
        if (send_message(&clients[id]) < 0) {
            errors++;
            clients[id].done = 1;
            active--;
        }
    }

    static struct epoll_event events[1024];
    char buf[MAX_SIZE];
    while (active > 0 && now_s() < hard_deadline) {
        int n = epoll_wait(epfd, events, 1024, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("loadgen: epoll_wait");
            break;
        }
        double now = now_s();
        for (int i = 0; i < n; i++) {
            size_t id = (size_t)events[i].data.u64;
            client_t *c = &clients[id];
            if (c->done) continue;
            ssize_t k = recv(c->fd, buf, size - c->received, 0);
            if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (k <= 0) { /* EOF or reset: the server dropped us */
                errors++;
                c->done = 1;
                active--;
                continue;
            }
            if (memcmp(buf, c->expected + c->received, (size_t)k) != 0) c->bad = 1;
            c->received += (size_t)k;
            if (c->received < size) continue;
            if (c->bad) errors++;
            if (c->sent_at >= measure_from && now <= end) {
                double us = (now - c->sent_at) * 1e6;
                buckets[us >= MAX_US ? MAX_US : (uint64_t)us]++;
                count++;
            }
            if (now >= end) {
                c->done = 1;
                active--;
                continue;
            }
            c->counter++;
            compose(c, id);
            if (send_message(c) < 0) {
                errors++;
                c->done = 1;
                active--;
            }
        }
    }
    size_t unfinished = active;
    for (size_t id = 0; id < clients_n; id++) close(clients[id].fd);
    close(epfd);

    printf("{\"clients\":%zu,\"size\":%zu,\"seconds\":%g,\"msgs\":%llu,\"msgs_per_sec\":%.0f,\"p50_us\":%llu,"
           "\"p99_us\":%llu,\"errors\":%llu,\"unfinished\":%zu}\n",
           clients_n, size, seconds, (unsigned long long)count, (double)count / seconds,
           (unsigned long long)percentile(buckets, count, 0.50), (unsigned long long)percentile(buckets, count, 0.99),
           (unsigned long long)errors, unfinished);
    return 0;
}
