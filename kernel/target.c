// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cowchain: VirtualBox-style differencing images as a device-mapper target.
 *
 * Scaffold: registers the "cowchain" target so the build and the in-guest
 * harness can load and unload it.  The table constructor refuses every table
 * until the chain lookup lands (issue 4).
 */
#include <linux/module.h>
#include <linux/device-mapper.h>

#define DM_MSG_PREFIX "cowchain"

static int cowchain_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	ti->error = "cowchain target is not implemented yet";
	return -EOPNOTSUPP;
}

static void cowchain_dtr(struct dm_target *ti)
{
}

static int cowchain_map(struct dm_target *ti, struct bio *bio)
{
	return DM_MAPIO_KILL;
}

static struct target_type cowchain_target = {
	.name    = "cowchain",
	.version = {0, 1, 0},
	.module  = THIS_MODULE,
	.ctr     = cowchain_ctr,
	.dtr     = cowchain_dtr,
	.map     = cowchain_map,
};

static int __init dm_cowchain_init(void)
{
	return dm_register_target(&cowchain_target);
}

static void __exit dm_cowchain_exit(void)
{
	dm_unregister_target(&cowchain_target);
}

module_init(dm_cowchain_init);
module_exit(dm_cowchain_exit);

MODULE_DESCRIPTION(DM_NAME " copy-on-write differencing image chains");
MODULE_LICENSE("GPL");
