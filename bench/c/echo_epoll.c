/*
 * Baseline for bench/echo.ts: a single-threaded, level-triggered epoll echo
 * server in plain C doing the seeds' talk(conn) loop: recv up to 1024 bytes,
 * send them back upper-cased, close at EOF or on error.
 *
 * usage: echo_epoll PORT [MAX_SECONDS]
 * Listens on 127.0.0.1:PORT (0 picks a free port), prints "listening PORT",
 * and exits by itself after MAX_SECONDS (default 120) if nobody stops it.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <fcntl.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Writes all of buf, waiting (rarely) for a full send buffer to drain. */
static int send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
            buf += n;
            len -= (size_t)n;
        } else if (errno == EAGAIN) {
            fd_set w;
            FD_ZERO(&w);
            FD_SET(fd, &w);
            select(fd + 1, NULL, &w, NULL, NULL);
        } else if (errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [MAX_SECONDS]\n", argv[0]);
        return 2;
    }
    alarm(argc > 2 ? (unsigned)atoi(argv[2]) : 120);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, 511) < 0) die("listen");
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    printf("listening %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

    struct epoll_event events[1024];
    char buf[1024];
    for (;;) {
        int n = epoll_wait(ep, events, 1024, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got > 0) {
                for (ssize_t k = 0; k < got; k++) buf[k] = (char)toupper((unsigned char)buf[k]);
                if (send_all(fd, buf, (size_t)got) == 0) continue;
            } else if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            close(fd); /* EOF or error: closing also removes it from the epoll set */
        }
    }
}
