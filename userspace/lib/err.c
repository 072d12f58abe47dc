// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Error messages and small I/O helpers.  Messages follow git's form: the
 * subject quoted first, then the reason; the CLI adds "cowchain: ".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include "internal.h"

int cc_fail(struct cowchain_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

int cc_failf(struct cowchain_error *err, int code, const char *path,
	     const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err)
		return code;
	n = snprintf(err->msg, sizeof(err->msg), "'%s': ", path);
	if (n < 0 || (size_t)n >= sizeof(err->msg))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(err->msg + n, sizeof(err->msg) - n, fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

int cc_fail_fmt(struct cowchain_error *err, int code, const char *path,
		const struct cowchain_err *ferr)
{
	return cc_failf(err, code, path, "%s", ferr->msg);
}

int cc_pread(int fd, void *buf, size_t len, u64 off)
{
	u8 *p = buf;

	while (len) {
		ssize_t r = pread(fd, p, len, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) {		/* past EOF of a sparse/short file: zeros */
			memset(p, 0, len);
			return -ENODATA;
		}
		p += r;
		off += (u64)r;
		len -= (size_t)r;
	}
	return 0;
}

int cc_fd_size(int fd, u64 *size, bool *is_reg)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (is_reg)
		*is_reg = S_ISREG(st.st_mode);
	if (S_ISREG(st.st_mode)) {
		*size = (u64)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) ? -errno : 0;
	return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
}

void (*cc_io_hook)(void);

int cc_pwrite(int fd, const void *buf, size_t len, u64 off)
{
	const u8 *p = buf;

	cc_io_step();
	while (len) {
		ssize_t r = pwrite(fd, p, len, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		p += r;
		off += (u64)r;
		len -= (size_t)r;
	}
	return 0;
}

int cc_random(void *buf, size_t len)
{
	u8 *p = buf;

	while (len) {
		ssize_t r = getrandom(p, len, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

void cowchain_uuid_str(const u8 *u, char out[37])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		 u[10], u[11], u[12], u[13], u[14], u[15]);
}
