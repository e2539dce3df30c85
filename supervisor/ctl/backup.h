/* wapictl backup / restore: the session store and the media store as one
 * archive (ustar, gzip by default) with a manifest of every file's size and
 * SHA-256, written last so that its presence proves the archive complete.
 *
 * backup runs beside a live server: the session store comes from the
 * supervisor's `snapshot` control command (copied in one step on its loop,
 * so never half-updated); media files are content-addressed and never change
 * once written, so they are read straight from paths.media.
 *
 * restore is offline (it refuses while the server's control socket answers):
 * it unpacks into hidden staging folders inside the two stores, checks every
 * file against the manifest, and only then moves the files into place. A
 * corrupt, truncated or foreign archive changes nothing. */
#ifndef WAPI_CTL_BACKUP_H
#define WAPI_CTL_BACKUP_H

/* argv: the options after the command word. sock: the -s socket or NULL
 * (then paths.run/wapi.sock). Return the exit status. */
int ctl_backup(const char *config_path, const char *sock, int argc, char **argv);
int ctl_restore(const char *config_path, const char *sock, int argc, char **argv);

#endif
