/* Access control at start-up, once the schema is migrated: in production,
 * a warning at every start while anyone may sign up (registration "open"),
 * and while no account exists a new one-time setup token for the first
 * admin, printed in the log (only its hash is stored). */
#ifndef WAPI_SUP_ACCESS_H
#define WAPI_SUP_ACCESS_H

void access_on_migrated(void);

#endif
