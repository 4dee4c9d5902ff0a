/* endpoint_local.c — is an endpoint on this host (endpoint_local.h) */
#include "endpoint_local.h"

#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

static bool addr_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

static bool addr_same(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a == NULL || b == NULL || a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

/* An address of one of this host's interfaces (its network namespace's). */
static bool addr_own(const struct sockaddr *sa)
{
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return false;
    bool own = false;
    for (const struct ifaddrs *i = ifs; i != NULL && !own; i = i->ifa_next)
        own = addr_same(i->ifa_addr, sa);
    freeifaddrs(ifs);
    return own;
}

bool ps_endpoint_local(const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return false;
    const char *h = endpoint + 6;
    const char *semi = strrchr(h, ';'); /* tcp://source;host:port */
    if (semi != NULL)
        h = semi + 1;
    char host[256];
    size_t n;
    if (h[0] == '[') { /* [v6]:port */
        const char *end = strchr(h, ']');
        if (end == NULL)
            return false;
        h++;
        n = (size_t)(end - h);
    } else {
        const char *colon = strrchr(h, ':');
        n = colon != NULL ? (size_t)(colon - h) : strlen(h);
    }
    if (n == 0 || n >= sizeof host)
        return false;
    memcpy(host, h, n);
    host[n] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return false;
    bool local = false;
    for (const struct addrinfo *a = res; a != NULL && !local; a = a->ai_next)
        local = addr_loopback(a->ai_addr) || addr_own(a->ai_addr);
    freeaddrinfo(res);
    return local;
}
