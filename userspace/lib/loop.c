// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Loop devices for file layers, and who uses a layer.
 *
 * A layer file is attached with LOOP_CONFIGURE (one ioctl: file, flags,
 * no window where the device is half set up) and LO_FLAGS_AUTOCLEAR, so
 * the loop device disappears when its last opener (the dm table) closes
 * it: detaching a dm device releases exactly the loop devices that only it
 * used.  Until the dm device holds it, the caller keeps it open (lp->fd),
 * otherwise autoclear would release it at once.
 *
 * Direct I/O is asked for (no double caching of layer data in the page
 * cache); a file system that cannot do it leaves the loop device buffered,
 * which /sys/block/loopN/loop/dio then says.
 *
 * Identity is by st_dev/st_ino of the backing file, found through
 * /sys/block/loopN/loop/backing_file: a path given differently (relative,
 * through a symlink) is still the same layer.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include "internal.h"
#include "lifecycle.h"

static int read_sysfs(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = 0;
	return 0;
}

static bool same_inode(const char *a, const struct stat *st)
{
	struct stat s;

	return !stat(a, &s) && s.st_dev == st->st_dev && s.st_ino == st->st_ino;
}

int cowchain_loop_find(const char *path, bool ro_only, char dev[CC_DEV_LEN], bool *ro)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int r = -ENOENT;

	if (stat(path, &st))
		return -errno;
	d = opendir("/sys/block");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char p[300], b[4096], rob[8];

		if (strncmp(de->d_name, "loop", 4))
			continue;
		snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", de->d_name);
		if (read_sysfs(p, b, sizeof(b)) || !same_inode(b, &st))
			continue;
		snprintf(p, sizeof(p), "/sys/block/%s/ro", de->d_name);
		if (read_sysfs(p, rob, sizeof(rob)))
			continue;
		if (ro_only && strcmp(rob, "1"))
			continue;
		snprintf(dev, CC_DEV_LEN, "/dev/%.50s", de->d_name);
		if (ro)
			*ro = !strcmp(rob, "1");
		r = 0;
		break;
	}
	closedir(d);
	return r;
}

static int loop_configure(const char *path, bool ro, struct cowchain_loop *lp,
			  struct cowchain_error *err)
{
	struct loop_config cfg;
	int ffd, ctl, lfd = -1, tries, r = 0;
	long n;

	ffd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (ffd < 0)
		return cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		r = cc_fail(err, -errno, "cannot open /dev/loop-control: %s (is the loop module loaded?)",
			    strerror(errno));
		goto out;
	}
	for (tries = 0; tries < 16; tries++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			r = cc_fail(err, -errno, "cannot get a free loop device: %s", strerror(errno));
			goto out;
		}
		snprintf(lp->dev, sizeof(lp->dev), "/dev/loop%ld", n);
		lfd = open(lp->dev, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (lfd < 0 && errno == ENOENT) {
			/* no udev: make the node ourselves */
			if (mknod(lp->dev, S_IFBLK | 0660, makedev(7, (unsigned)n)) == 0 ||
			    errno == EEXIST)
				lfd = open(lp->dev, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		}
		if (lfd < 0) {
			r = cc_fail(err, -errno, "cannot open '%s': %s", lp->dev, strerror(errno));
			goto out;
		}
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (unsigned)ffd;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO |
				    (ro ? LO_FLAGS_READ_ONLY : 0);
		snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%s", path);
		if (!ioctl(lfd, LOOP_CONFIGURE, &cfg))
			break;
		if (errno == EINVAL) {
			/* an older kernel refusing direct I/O here: go buffered */
			cfg.info.lo_flags &= ~LO_FLAGS_DIRECT_IO;
			if (!ioctl(lfd, LOOP_CONFIGURE, &cfg))
				break;
		}
		if (errno != EBUSY) {
			r = cc_fail(err, -errno, "cannot attach '%s' to %s: %s", path, lp->dev,
				    strerror(errno));
			goto out;
		}
		close(lfd);	/* somebody took it first: next one */
		lfd = -1;
	}
	if (lfd < 0) {
		r = cc_fail(err, -EBUSY, "cannot attach '%s': no free loop device", path);
		goto out;
	}
	{
		char p[128], v[8];

		snprintf(p, sizeof(p), "/sys/block/%s/loop/dio", lp->dev + 5);
		lp->direct_io = !read_sysfs(p, v, sizeof(v)) && !strcmp(v, "1");
	}
	lp->fd = lfd;
	lfd = -1;
	lp->created = true;
	lp->read_only = ro;
out:
	if (lfd >= 0)
		close(lfd);
	if (ctl >= 0)
		close(ctl);
	close(ffd);
	return r;
}

int cowchain_loop_get(const char *path, bool ro, bool reuse_ro, struct cowchain_loop *lp,
		      struct cowchain_error *err)
{
	struct stat st;

	memset(lp, 0, sizeof(*lp));
	lp->fd = -1;
	if (stat(path, &st))
		return cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		snprintf(lp->dev, sizeof(lp->dev), "%s", path);
		lp->blockdev = true;
		lp->read_only = ro;
		lp->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (lp->fd < 0)
			return cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return cc_failf(err, -EINVAL, path, "not a regular file or block device");
	if (reuse_ro && !cowchain_loop_find(path, true, lp->dev, NULL)) {
		/* pin it, then make sure it is still this file */
		lp->fd = open(lp->dev, O_RDONLY | O_CLOEXEC);
		if (lp->fd >= 0) {
			struct loop_info64 li;

			/*
			 * Still bound, to this file, read-only?  sysfs can name a
			 * loop device whose autoclear rundown has begun (its last
			 * holder, a device just detached, closed it); opening it
			 * then succeeds but it loses its file a moment later.
			 * LOOP_GET_STATUS64 answers ENXIO unless it is bound.
			 */
			if (!ioctl(lp->fd, LOOP_GET_STATUS64, &li) &&
			    li.lo_device == (u64)st.st_dev && li.lo_inode == (u64)st.st_ino &&
			    (li.lo_flags & LO_FLAGS_READ_ONLY) && (li.lo_flags & LO_FLAGS_AUTOCLEAR)) {
				lp->read_only = true;
				return 0;
			}
			close(lp->fd);
			lp->fd = -1;
		}
	}
	return loop_configure(path, ro, lp, err);
}

void cowchain_loop_release(struct cowchain_loop *lp)
{
	if (lp->fd >= 0)
		close(lp->fd);
	lp->fd = -1;
}

int cowchain_blk_majmin(const char *dev, char out[CC_DEV_LEN])
{
	struct stat st;

	if (stat(dev, &st))
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	snprintf(out, CC_DEV_LEN, "%u:%u", major(st.st_rdev), minor(st.st_rdev));
	return 0;
}

int cowchain_majmin_path(const char *majmin, char out[CC_DEV_LEN])
{
	char p[128], name[64], *s;
	ssize_t n;

	snprintf(p, sizeof(p), "/sys/dev/block/%s", majmin);
	n = readlink(p, name, sizeof(name) - 1);
	if (n < 0) {
		/* a path already */
		if (majmin[0] == '/') {
			snprintf(out, CC_DEV_LEN, "%s", majmin);
			return 0;
		}
		return -errno;
	}
	name[n] = 0;
	s = strrchr(name, '/');
	snprintf(out, CC_DEV_LEN, "/dev/%.50s", s ? s + 1 : name);
	return 0;
}

int cowchain_loop_backing(const char *dev, char *path, size_t len)
{
	char mm[CC_DEV_LEN], p[128];
	unsigned ma, mi;

	if (sscanf(dev, "%u:%u", &ma, &mi) == 2)
		snprintf(mm, sizeof(mm), "%u:%u", ma, mi);
	else if (cowchain_blk_majmin(dev, mm))
		return -ENOENT;
	snprintf(p, sizeof(p), "/sys/dev/block/%s/loop/backing_file", mm);
	return read_sysfs(p, path, len) ? -ENOENT : 0;
}

int cowchain_loop_set_capacity(const char *dev, struct cowchain_error *err)
{
	int fd = open(dev, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return cc_fail(err, -errno, "cannot open '%s': %s", dev, strerror(errno));
	if (ioctl(fd, LOOP_SET_CAPACITY, 0))
		r = cc_fail(err, -errno, "cannot grow '%s': %s", dev, strerror(errno));
	close(fd);
	return r;
}

static void add_name(char *buf, size_t len, int *n, const char *name)
{
	size_t used = 0;
	int i;

	for (i = 0; i < *n; i++)
		used += strlen(buf + used) + 1;
	if (used + strlen(name) + 2 > len)
		return;
	strcpy(buf + used, name);
	buf[used + strlen(name) + 1] = 0;
	(*n)++;
}

/* dm devices holding the block device sysfs dir sysdir (/sys/block/X or /sys/dev/block/M:m) */
static void add_holders(const char *sysdir, struct cowchain_users *u)
{
	char p[300];
	struct dirent *de;
	DIR *d;

	snprintf(p, sizeof(p), "%s/holders", sysdir);
	d = opendir(p);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char q[600], name[256];

		if (de->d_name[0] == '.')
			continue;
		snprintf(q, sizeof(q), "/sys/block/%s/dm/name", de->d_name);
		if (!read_sysfs(q, name, sizeof(name)))
			add_name(u->dms, sizeof(u->dms), &u->ndms, name);
	}
	closedir(d);
}

int cowchain_layer_users(const char *path, struct cowchain_users *u)
{
	struct stat st;
	struct dirent *de;
	DIR *d;

	memset(u, 0, sizeof(*u));
	if (stat(path, &st))
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		char p[128];

		snprintf(p, sizeof(p), "/sys/dev/block/%u:%u", major(st.st_rdev), minor(st.st_rdev));
		add_holders(p, u);
		return 0;
	}
	d = opendir("/sys/block");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char p[300], b[4096];

		if (strncmp(de->d_name, "loop", 4))
			continue;
		snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", de->d_name);
		if (read_sysfs(p, b, sizeof(b)) || !same_inode(b, &st))
			continue;
		snprintf(p, sizeof(p), "/dev/%s", de->d_name);
		add_name(u->loops, sizeof(u->loops), &u->nloops, p);
		snprintf(p, sizeof(p), "/sys/block/%s", de->d_name);
		add_holders(p, u);
	}
	closedir(d);
	return 0;
}
