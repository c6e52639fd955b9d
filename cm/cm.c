/*
 * cm.c - cairnd's context: its setup, the volume information, the stats
 * report, and small shared helpers. The loop is loop.c, the counters
 * stats.c; daemon.c creates the modules.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/inode.h"
#include "common/log.h"
#include "common/util.h"

int
cm_init(struct cm *cm, struct cm_config *cfg)
{
	memset(cm, 0, sizeof(*cm));
	cm->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	pthread_mutex_init(&cm->lock, NULL);
	cm_loop_init(&cm->loop);
	atomic_init(&cm->online, 0);
	return 0;
}

void
cm_release(struct cm *cm)
{
	cm_config_release(&cm->cfg);
	free(cm->token);
	cm->token = NULL;
	pthread_mutex_destroy(&cm->lock);
	cm_loop_release(&cm->loop);
}

int
cm_volinfo(struct cm *cm, struct proto_volinfo *vi)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&cm->lock);
	if (cm->have_vi) {
		*vi = cm->vi;
		rc = 0;
	}
	pthread_mutex_unlock(&cm->lock);
	return rc;
}

size_t
cm_stats_format(struct cm *cm, char *buf, size_t len)
{
	struct cs_stats cs = {0};
	size_t off = 0;
	int n;

	if (cm->cs)
		cs_get_stats(cm->cs, &cs);
#define P(...)                                                               \
	do {                                                                 \
		n = snprintf(buf + off, len - off, __VA_ARGS__);             \
		if (n < 0 || (size_t)n >= len - off)                         \
			return off;                                          \
		off += (size_t)n;                                            \
	} while (0)
	if (len == 0)
		return 0;
	buf[0] = '\0';
	P("online %d\n", atomic_load(&cm->online));
	off = cm_stats_format_counters(&cm->st, buf, len, off);
	P("inodes %zu\n", cm->ino ? ino_count(cm->ino) : (size_t)0);
	P("cache_bytes_used %llu\n", (unsigned long long)cs.bytes_used);
	P("cache_bytes_limit %llu\n", (unsigned long long)cs.bytes_limit);
	P("cache_files_used %llu\n", (unsigned long long)cs.files_used);
	P("cache_evictions %llu\n", (unsigned long long)cs.evictions);
	P("chunk_size %u\n", cm->chunk_size);
#undef P
	return off;
}

int
cm_http_errno(int err, long status, const char *body, size_t len)
{
	struct proto_error pe;

	if (err)
		return err == -ECANCELED ? -ECANCELED : -EIO;
	if (status >= 200 && status < 300)
		return 0;
	if (status == 304)
		return 0;
	if (body && len && proto_error_decode(body, len, &pe) == 0 && pe.err)
		return -pe.err;
	if (status <= 0)
		return -EIO;
	return -proto_status_to_errno((int)status);
}

char *
cm_read_token(const char *path)
{
	char buf[1024], why[512];
	ssize_t n;
	char *p, *e;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		rc = errno;
		if (rc == ELOOP)
			log_err(LOG_MAIN,
				"cannot use token file '%s': it is a "
				"symbolic link; give the file itself",
				path);
		errno = rc;
		return NULL;
	}
	rc = util_check_secret_file(fd, path, why, sizeof(why));
	if (rc) {
		if (rc == -EPERM)
			log_err(LOG_MAIN, "cannot use token file '%s': %s",
				path, why);
		close(fd);
		errno = -rc;
		return NULL;
	}
	n = util_pread_all(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n < 0) {
		rc = (int)-n;
		p = NULL;
		goto out;
	}
	buf[n] = '\0';
	p = buf;
	while (*p && isspace((unsigned char)*p))
		p++;
	e = p;
	while (*e && !isspace((unsigned char)*e)) {
		if (!isprint((unsigned char)*e))
			break;
		e++;
	}
	if (*e && !isspace((unsigned char)*e)) {
		rc = EINVAL; /* a control byte in the token */
		p = NULL;
		goto out;
	}
	*e = '\0';
	if (!*p) {
		rc = EINVAL;
		p = NULL;
		goto out;
	}
	p = strdup(p);
	rc = p ? 0 : errno;
out:
	/* On every path: whatever part of the token was read. */
	explicit_bzero(buf, sizeof(buf));
	errno = rc;
	return p;
}
