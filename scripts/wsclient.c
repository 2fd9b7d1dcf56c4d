/*
 * A second WebSocket load client, written apart from `exambell bench` (its own code, in C,
 * one thread, epoll): it checks that client's figures with code that shares nothing with it.
 *
 *   wsclient URLS AWAIT TIMEOUT_S
 *
 * URLS is a file of ws://host:port/path?query lines, one connection each. The client opens
 * every connection, at most IN_FLIGHT handshakes at a time (source addresses 127.0.0.2, .3, …
 * 5,000 connections each, for loopback targets), does the handshake, then prints "connected N" and waits. For each connection it
 * stamps CLOCK_MONOTONIC (ns) when the first text frame containing AWAIT arrives (an empty AWAIT
 * takes any text frame) and answers pings. When every open connection has its stamp, or TIMEOUT_S
 * after "connected", it prints "stamps", one stamp per line (0: none), then "cpu SECONDS" (its
 * own user + system time since "connected") and exits.
 *
 * Build: cc -O2 -o wsclient scripts/wsclient.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_FLIGHT 256

enum { HANDSHAKE, OPEN, DEAD };

typedef struct {
    int fd;
    int state;
    unsigned long long stamp;
    char *request;
    size_t request_len, sent;
    unsigned char *buf;
    size_t len, cap;
} Conn;

static unsigned long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

/* ws://host:port/path → host, port, path (host is a dotted IPv4 address). */
static int parse(const char *url, char *host, int *port, char *path) {
    if (strncmp(url, "ws://", 5) != 0) return -1;
    const char *h = url + 5, *colon = strchr(h, ':'), *slash = strchr(h, '/');
    if (!colon || !slash || colon > slash) return -1;
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = 0;
    *port = atoi(colon + 1);
    strcpy(path, slash);
    return 0;
}

/* Sends a masked control frame (pong) with `payload`. */
static void send_control(int fd, int opcode, const unsigned char *payload, size_t n) {
    unsigned char frame[2 + 4 + 125];
    if (n > 125) n = 125;
    frame[0] = (unsigned char)(0x80 | opcode);
    frame[1] = (unsigned char)(0x80 | n);
    memset(frame + 2, 0, 4); /* a zero mask: the payload goes as it is */
    memcpy(frame + 6, payload, n);
    (void)!write(fd, frame, 6 + n);
}

/* Consumes whole frames from c->buf; returns 1 when the awaited frame arrived. */
static int frames(Conn *c, const char *await) {
    int told = 0;
    size_t at = 0;
    while (c->len - at >= 2) {
        unsigned char *f = c->buf + at;
        int opcode = f[0] & 0x0f;
        unsigned long long n = f[1] & 0x7f;
        size_t head = 2;
        if (n == 126) {
            if (c->len - at < 4) break;
            n = ((unsigned long long)f[2] << 8) | f[3];
            head = 4;
        } else if (n == 127) {
            if (c->len - at < 10) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = (n << 8) | f[2 + i];
            head = 10;
        }
        if (c->len - at < head + n) break;
        if (opcode == 0x1 && !c->stamp) {
            if (!*await || memmem(f + head, n, await, strlen(await))) {
                c->stamp = now_ns();
                told = 1;
            }
        } else if (opcode == 0x9) {
            send_control(c->fd, 0xA, f + head, n);
        } else if (opcode == 0x8) {
            c->state = DEAD;
        }
        at += head + n;
    }
    memmove(c->buf, c->buf + at, c->len - at);
    c->len -= at;
    return told;
}

static int read_into(Conn *c) {
    for (;;) {
        if (c->cap - c->len < 4096) {
            c->cap = c->cap * 2 + 4096;
            c->buf = realloc(c->buf, c->cap);
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r > 0) {
            c->len += (size_t)r;
            continue;
        }
        if (r == 0) return -1;
        return errno == EAGAIN ? 0 : -1;
    }
}

/* Opens connection i (non-blocking connect, handshake sent when writable); 0 when under way. */
static int start(Conn *conns, char **urls, size_t i, int ep) {
    char host[256], path[3500];
    int port;
    Conn *c = &conns[i];
    c->state = DEAD;
    if (parse(urls[i], host, &port, path) != 0) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        perror("socket");
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (strncmp(host, "127.", 4) == 0) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        char source[32];
        snprintf(source, sizeof source, "127.0.0.%zu", 2 + i / 5000);
        inet_pton(AF_INET, source, &src.sin_addr);
        bind(fd, (struct sockaddr *)&src, sizeof src);
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, host, &dst.sin_addr);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = HANDSHAKE;
    c->request = malloc(strlen(path) + strlen(host) + 256);
    c->request_len = (size_t)sprintf(c->request,
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        path, host, port);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: wsclient URLS AWAIT TIMEOUT_S\n");
        return 2;
    }
    const char *await = argv[2];
    int timeout = atoi(argv[3]);
    FILE *in = fopen(argv[1], "r");
    if (!in) {
        perror("URLS");
        return 2;
    }
    size_t count = 0, cap = 1024;
    char **urls = malloc(cap * sizeof *urls);
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!*line) continue;
        if (count == cap) urls = realloc(urls, (cap *= 2) * sizeof *urls);
        urls[count++] = strdup(line);
    }
    fclose(in);

    Conn *conns = calloc(count, sizeof *conns);
    int ep = epoll_create1(0);
    size_t pending = 0, next = 0;
    for (size_t i = 0; i < count; i++) conns[i].state = DEAD;
    struct epoll_event events[1024];
    size_t open = 0, told = 0;
    unsigned long long deadline = 0;
    double cpu_at_connected = 0;
    /* Connections that give no answer at all are given up TIMEOUT_S after the start. */
    unsigned long long connect_deadline = now_ns() + (unsigned long long)timeout * 1000000000ull;
    for (;;) {
        /* At most IN_FLIGHT handshakes at once, as browsers arrive: a server may refuse a burst
           of handshakes beyond its budget (ExamBell answers them 503), which is not the fan-out. */
        while (deadline == 0 && next < count && pending < IN_FLIGHT) {
            if (start(conns, urls, next++, ep) == 0) pending++;
        }
        if (deadline == 0 && ((pending == 0 && next == count) || now_ns() > connect_deadline)) {
            printf("connected %zu\n", open);
            fflush(stdout);
            cpu_at_connected = cpu_seconds();
            deadline = now_ns() + (unsigned long long)timeout * 1000000000ull;
        }
        if (deadline && (told >= open || now_ns() > deadline)) break;
        int n = epoll_wait(ep, events, 1024, 100);
        for (int k = 0; k < n; k++) {
            Conn *c = &conns[events[k].data.u64];
            if (c->state == DEAD) continue;
            if (c->state == HANDSHAKE && (events[k].events & EPOLLOUT) && c->sent < c->request_len) {
                ssize_t w = write(c->fd, c->request + c->sent, c->request_len - c->sent);
                if (w > 0) c->sent += (size_t)w;
            }
            if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int gone = read_into(c) < 0;
                if (c->state == HANDSHAKE) {
                    unsigned char *end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
                    if (end) {
                        int upgraded = c->len >= 12 && memcmp(c->buf, "HTTP/1.1 101", 12) == 0;
                        size_t head = (size_t)(end + 4 - c->buf);
                        memmove(c->buf, c->buf + head, c->len - head);
                        c->len -= head;
                        c->state = upgraded ? OPEN : DEAD;
                        pending--;
                        if (upgraded) open++;
                    } else if (gone) {
                        c->state = DEAD;
                        pending--;
                    }
                }
                if (c->state == OPEN) {
                    told += (size_t)frames(c, await);
                    if (gone) c->state = DEAD;
                }
            }
        }
    }
    double cpu = cpu_seconds() - cpu_at_connected;
    printf("stamps\n");
    for (size_t i = 0; i < count; i++) printf("%llu\n", conns[i].stamp);
    printf("cpu %.3f\n", cpu);
    return 0;
}
