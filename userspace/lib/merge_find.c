// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * What merge, flatten and compact need around the index: finding a layer's
 * children on disk, telling whether a file is attached, and moving data
 * with large I/O.
 *
 * Children are found by scanning directories (the parent's own, plus any
 * the user names): a layer names its parent, never the other way round, so
 * there is no other way.  A child in a directory nobody names is not seen;
 * the plan prints the directories it searched so the user can tell.
 *
 * "Attached" means a loop device is backed by the file (compared by device
 * and inode, /sys/block/loop* /loop/backing_file), or, for a block device,
 * that it cannot be opened O_EXCL (a dm table or a mount holds it).  A
 * dm-cowchain device over files reaches them only through loop devices,
 * so this covers every live NAME on this host.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "merge_internal.h"

int cc_peek_sb(const char *path, struct cowchain_sb *sb)
{
	struct cowchain_sb_disk *d;
	struct cowchain_sb s[2];
	struct cowchain_err ferr;
	struct stat st;
	int fd, ok[2], i, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < 2 * COWCHAIN_BLOCK_SIZE) {
		close(fd);
		return -EINVAL;
	}
	d = malloc(sizeof(*d));
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	for (i = 0; i < 2; i++) {
		ok[i] = cc_pread(fd, d, sizeof(*d), (u64)i << COWCHAIN_BLOCK_SHIFT) == 0 &&
			cowchain_sb_unpack(d, (u64)i, (u64)st.st_size >> COWCHAIN_BLOCK_SHIFT,
					   &s[i], &ferr) == 0;
	}
	free(d);
	close(fd);
	if (!ok[0] && !ok[1])
		r = -EUCLEAN;
	else
		*sb = (ok[0] && (!ok[1] || s[0].seq > s[1].seq)) ? s[0] : s[1];
	return r;
}

void cc_found_free(struct cc_found *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i].path);
	free(v);
}

void cc_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static int strv_add(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(s);
	if (!nv[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

int cc_search_dirs(const char *path, const char *const *extra, size_t nextra,
		   char ***out, size_t *n, struct cowchain_error *err)
{
	char *dir = cc_dirname(path), real[PATH_MAX];
	size_t i, k;
	int r = 0;

	*out = NULL;
	*n = 0;
	if (!dir)
		return cc_fail(err, -ENOMEM, "out of memory");
	for (i = 0; i <= nextra && !r; i++) {
		const char *d = i ? extra[i - 1] : dir;
		struct stat st;

		if (stat(d, &st) || !S_ISDIR(st.st_mode)) {
			r = cc_fail(err, -ENOTDIR, "cannot search '%s': %s", d,
				    errno && !S_ISDIR(st.st_mode) ? strerror(errno) : "not a directory");
			break;
		}
		if (!realpath(d, real)) {
			r = cc_fail(err, -errno, "cannot search '%s': %s", d, strerror(errno));
			break;
		}
		for (k = 0; k < *n; k++)
			if (!strcmp((*out)[k], real))
				break;
		if (k == *n && strv_add(out, n, real))
			r = cc_fail(err, -ENOMEM, "out of memory");
	}
	free(dir);
	if (r) {
		cc_strv_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

int cc_find_children(const u8 *uuid, char *const *dirs, size_t ndirs,
		     struct cc_found **out, size_t *n, struct cowchain_error *err)
{
	struct { dev_t dev; ino_t ino; } *seen = NULL;
	size_t nseen = 0, i;
	int r = 0;

	*out = NULL;
	*n = 0;
	for (i = 0; i < ndirs && !r; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;

		if (!d)
			return cc_fail(err, -errno, "cannot search '%s': %s", dirs[i], strerror(errno));
		while (!r && (de = readdir(d))) {
			struct cowchain_sb sb;
			struct stat st;
			char *p;
			size_t k;

			if (de->d_name[0] == '.')
				continue;
			if (asprintf(&p, "%s/%s", dirs[i], de->d_name) < 0) {
				r = cc_fail(err, -ENOMEM, "out of memory");
				break;
			}
			if (stat(p, &st) || !S_ISREG(st.st_mode) || cc_peek_sb(p, &sb) ||
			    sb.parent_kind != COWCHAIN_PARENT_LAYER ||
			    memcmp(sb.parent_uuid, uuid, COWCHAIN_UUID_SIZE)) {
				free(p);
				continue;
			}
			for (k = 0; k < nseen; k++)
				if (seen[k].dev == st.st_dev && seen[k].ino == st.st_ino)
					break;
			if (k < nseen) {
				free(p);
				continue;
			}
			{
				void *ns = realloc(seen, (nseen + 1) * sizeof(*seen));
				struct cc_found *nf = realloc(*out, (*n + 1) * sizeof(**out));

				if (ns)
					seen = ns;
				if (nf)
					*out = nf;
				if (!ns || !nf) {
					free(p);
					r = cc_fail(err, -ENOMEM, "out of memory");
					break;
				}
			}
			seen[nseen].dev = st.st_dev;
			seen[nseen++].ino = st.st_ino;
			(*out)[*n].path = p;
			(*out)[*n].sb = sb;
			(*n)++;
		}
		closedir(d);
	}
	free(seen);
	if (r) {
		cc_found_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

int cowchain_check_unattached(const char *path, struct cowchain_error *err)
{
	struct stat st, bst;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (stat(path, &st))
		return cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		int fd = open(path, O_RDONLY | O_EXCL | O_CLOEXEC);

		if (fd < 0)
			return errno == EBUSY
				? cc_failf(err, -EBUSY, path, "is in use (held by a device-mapper table or a mount)")
				: cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
		close(fd);
		return 0;
	}
	d = opendir("/sys/block");
	if (!d)
		return 0;	/* no sysfs: nothing can be attached that we could see */
	while (!r && (de = readdir(d))) {
		char p[512], back[PATH_MAX + 16];
		ssize_t n;
		int fd;

		if (strncmp(de->d_name, "loop", 4))
			continue;
		snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", de->d_name);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, back, sizeof(back) - 1);
		close(fd);
		if (n <= 0)
			continue;
		back[n] = 0;
		if (back[n - 1] == '\n')
			back[--n] = 0;
		if (!stat(back, &bst) && bst.st_dev == st.st_dev && bst.st_ino == st.st_ino)
			r = cc_failf(err, -EBUSY, path, "is attached (backs /dev/%s); detach it first",
				     de->d_name);
	}
	closedir(d);
	return r;
}

int cc_punch(int fd, u64 off, u64 len)
{
	cc_io_step();
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return errno == EOPNOTSUPP ? 0 : -errno;	/* space not given back, still correct */
	return 0;
}

int cc_sync_dir(const char *path)
{
	char *dir = cc_dirname(path);
	int fd, r = 0;

	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		r = -errno;
	close(fd);
	return r;
}

/* ---- copying ----------------------------------------------------------- */

#define COPY_CHUNK	(8u << 20)

static int copy_run(struct cc_copier *cp, struct cowchain_error *err)
{
	u64 src = cp->src, dst = cp->dst, len = cp->len;
	int r;

	/*
	 * Start write-back of each chunk as soon as it is written, so the
	 * commit's fdatasync finds little left to do and reading the next
	 * chunk overlaps writing the last (what dd gets from the page cache).
	 */
	posix_fadvise(cp->sfd, (off_t)src, (off_t)len, POSIX_FADV_SEQUENTIAL);
	while (len) {
		size_t n = len < COPY_CHUNK ? (size_t)len : COPY_CHUNK;

		if (cp->synced != cp->done) {	/* the previous chunk */
			sync_file_range(cp->dfd, (off_t)cp->sync_at, (off_t)(cp->done - cp->synced),
					SYNC_FILE_RANGE_WRITE);
			cp->synced = cp->done;
		}
		cp->sync_at = dst;
		cc_io_step();
		if (!cp->no_cfr) {
			loff_t so = (loff_t)src, dof = (loff_t)dst;
			ssize_t got = copy_file_range(cp->sfd, &so, cp->dfd, &dof, n, 0);

			if (got > 0) {
				src += (u64)got;
				dst += (u64)got;
				len -= (u64)got;
				cp->done += (u64)got;
				continue;
			}
			if (got < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
					errno == EOPNOTSUPP)) {
				cp->no_cfr = true;
				continue;
			}
			if (got < 0 && errno == EINTR)
				continue;
			/* got == 0 (source past its end) or an error: the slow path says which. */
			cp->no_cfr = true;
		}
		if (!cp->buf) {
			cp->buf = malloc(COPY_CHUNK);
			if (!cp->buf)
				return cc_fail(err, -ENOMEM, "out of memory");
		}
		r = cc_pread(cp->sfd, cp->buf, n, src);
		if (r == -ENODATA)
			return cc_failf(err, -EIO, cp->spath, "data at byte %llu lies past the end of the file",
					(unsigned long long)src);
		if (r)
			return cc_failf(err, r, cp->spath, "cannot read: %s", strerror(-r));
		r = cc_pwrite(cp->dfd, cp->buf, n, dst);
		if (r)
			return cc_failf(err, r, cp->dpath, "cannot write data: %s", strerror(-r));
		src += n;
		dst += n;
		len -= n;
		cp->done += n;
	}
	if (cp->synced != cp->done)
		sync_file_range(cp->dfd, (off_t)cp->sync_at, (off_t)(cp->done - cp->synced),
				SYNC_FILE_RANGE_WRITE);
	cp->synced = cp->done;
	cp->len = 0;
	return 0;
}

int cc_copy_add(struct cc_copier *cp, u64 src, u64 dst, u64 len, struct cowchain_error *err)
{
	int r;

	if (cp->len && cp->src + cp->len == src && cp->dst + cp->len == dst &&
	    cp->len < (64u << 20)) {
		cp->len += len;
		return 0;
	}
	r = cc_copy_flush(cp, err);
	cp->src = src;
	cp->dst = dst;
	cp->len = len;
	return r;
}

int cc_copy_flush(struct cc_copier *cp, struct cowchain_error *err)
{
	return cp->len ? copy_run(cp, err) : 0;
}

void cc_copy_done(struct cc_copier *cp)
{
	free(cp->buf);
	cp->buf = NULL;
}

/* Where a layer's locator points (relative to its directory). */
char *cc_locator_target(const char *path, const struct cowchain_sb *sb)
{
	char *dir, *p = NULL;
	int n = (int)sb->locator_len;

	if (!n)
		return NULL;
	if (sb->locator[0] == '/')
		return strndup((const char *)sb->locator, (size_t)n);
	dir = cc_dirname(path);
	if (dir && asprintf(&p, "%s/%.*s", dir, n, (const char *)sb->locator) < 0)
		p = NULL;
	free(dir);
	return p;
}


/* The first layer in dirs whose superblock match accepts, or NULL. */
static int find_first(char *const *dirs, size_t ndirs,
		      bool (*match)(const struct cowchain_sb *sb, const u8 *uuid),
		      const u8 *uuid, char **out, struct cowchain_error *err)
{
	size_t i;

	*out = NULL;
	for (i = 0; i < ndirs && !*out; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;

		if (!d)
			return cc_fail(err, -errno, "cannot search '%s': %s", dirs[i], strerror(errno));
		while (!*out && (de = readdir(d))) {
			struct cowchain_sb sb;
			char *p;

			if (de->d_name[0] == '.')
				continue;
			if (asprintf(&p, "%s/%s", dirs[i], de->d_name) < 0) {
				closedir(d);
				return cc_fail(err, -ENOMEM, "out of memory");
			}
			if (!cc_peek_sb(p, &sb) && match(&sb, uuid))
				*out = p;
			else
				free(p);
		}
		closedir(d);
	}
	return 0;
}

static bool is_leftover(const struct cowchain_sb *sb, const u8 *peer)
{
	return (sb->flags & COWCHAIN_SB_MERGING) &&
	       sb->merge_state == COWCHAIN_MERGE_INTO_CHILDREN &&
	       !memcmp(sb->merge_peer_uuid, peer, COWCHAIN_UUID_SIZE);
}

int cc_find_leftover(const u8 *peer, char *const *dirs, size_t ndirs, char **out,
		     struct cowchain_error *err)
{
	return find_first(dirs, ndirs, is_leftover, peer, out, err);
}

static bool is_layer(const struct cowchain_sb *sb, const u8 *uuid)
{
	return !memcmp(sb->uuid, uuid, COWCHAIN_UUID_SIZE);
}

int cc_find_layer(const u8 *uuid, char *const *dirs, size_t ndirs, char **out,
		  struct cowchain_error *err)
{
	return find_first(dirs, ndirs, is_layer, uuid, out, err);
}
