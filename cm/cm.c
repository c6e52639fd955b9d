/*
 * cm.c - small helpers every level of cairnd shares: an HTTP result as an
 * errno, the bearer token file. The loop is loop.c, the counters
 * stats.c; struct cm itself is set up, reported on and torn down by
 * daemon.c.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm/cm.h"
#include "common/log.h"
#include "common/util.h"

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
