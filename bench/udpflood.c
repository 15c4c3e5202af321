/* udpflood: sends minimum-size UDP frames as fast as it can for a while, then prints how many (bench only). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define FRAME 60        /* 14 Ethernet + 20 IPv4 + 8 UDP + 18 payload: the minimum frame */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned short ip_csum(const unsigned char *p, size_t n)
{
	unsigned long s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (unsigned long)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (unsigned short)~s;
}

/*
 * With IFNAME and DSTMAC: raw frames on an AF_PACKET socket that bypasses
 * the qdisc, so the sender spends as little as it can per packet and the
 * receiver's filter is what the run measures. Without: a UDP socket.
 */
int main(int argc, char **argv)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	struct sockaddr_ll ll = { .sll_family = AF_PACKET };
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	unsigned char frame[FRAME];
	unsigned long long sent = 0, errors = 0;
	double secs, t0, t1;
	int fd, raw = argc == 6, one = 1;

	if ((argc != 4 && argc != 6) || inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "usage: udpflood IPV4 PORT SECONDS [IFNAME DSTMAC]\n");
		return 2;
	}
	dst.sin_port = htons((unsigned short)atoi(argv[2]));
	secs = atof(argv[3]);
	if (secs <= 0 || secs > 600)
		return 2;
	memset(frame, 0, sizeof(frame));
	if (raw) {
		unsigned char *ip = frame + 14, *udp = ip + 20;
		unsigned int m[6];

		if (sscanf(argv[5], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6 ||
		    !(ll.sll_ifindex = (int)if_nametoindex(argv[4]))) {
			fprintf(stderr, "udpflood: bad interface or MAC\n");
			return 2;
		}
		for (int i = 0; i < 6; i++)
			frame[i] = (unsigned char)m[i];
		frame[6] = 0x02;                        /* a locally administered source */
		frame[12] = 0x08;                       /* IPv4 */
		ip[0] = 0x45;
		ip[3] = FRAME - 14;
		ip[8] = 64;
		ip[9] = IPPROTO_UDP;
		memcpy(ip + 12, (unsigned char[]){ 10, 213, 255, 1 }, 4);
		memcpy(ip + 16, &dst.sin_addr, 4);
		ip[10] = (unsigned char)(ip_csum(ip, 20) >> 8);
		ip[11] = (unsigned char)ip_csum(ip, 20);
		udp[0] = 0x30;
		udp[1] = 0x39;
		memcpy(udp + 2, &dst.sin_port, 2);
		udp[5] = FRAME - 34;
		ll.sll_protocol = htons(ETH_P_IP);
		ll.sll_halen = 6;
		memcpy(ll.sll_addr, frame, 6);
		fd = socket(AF_PACKET, SOCK_RAW, 0);
		if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0 ||
		    bind(fd, (struct sockaddr *)&ll, sizeof(ll)) < 0) {
			perror("udpflood: packet socket");
			return 1;
		}
	} else {
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
			perror("udpflood: socket");
			return 1;
		}
	}
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = raw ? frame : frame + 42;
		iov[i].iov_len = raw ? FRAME : FRAME - 42;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		if (raw) {
			msgs[i].msg_hdr.msg_name = &ll;
			msgs[i].msg_hdr.msg_namelen = sizeof(ll);
		}
	}
	t0 = now();
	t1 = t0;
	while (t1 - t0 < secs) {
		for (int k = 0; k < 16; k++) {
			int n = sendmmsg(fd, msgs, BATCH, 0);

			if (n > 0)
				sent += (unsigned long long)n;
			else if (errno != EINTR)
				errors++;   /* ENOBUFS, or ECONNREFUSED from ICMP: keep going */
		}
		t1 = now();
	}
	printf("sent %llu secs %.3f errors %llu\n", sent, t1 - t0, errors);
	return 0;
}
