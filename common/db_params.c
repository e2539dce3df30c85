#include "db_params.h"

#include <stdio.h>

void db_params_init(struct db_params *p, const struct wapi_config *cfg, const char *application_name)
{
    int i = 0;
    snprintf(p->url, sizeof p->url, "%s", cfg->database.url ? cfg->database.url : "");
    snprintf(p->password, sizeof p->password, "%s", cfg->database.password ? cfg->database.password : "");
    snprintf(p->app, sizeof p->app, "%s", application_name);
    p->keys[i] = "dbname", p->values[i++] = p->url; /* expanded: may be a full URI */
    if (p->password[0])
        p->keys[i] = "password", p->values[i++] = p->password;
    p->keys[i] = "application_name", p->values[i++] = p->app;
    p->keys[i] = "connect_timeout", p->values[i++] = "5";
    p->keys[i] = NULL, p->values[i] = NULL;
}
