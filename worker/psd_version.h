/* <psd/version.h> — the version of libpsworker and of psd it comes with.
 * A program compiled against one version may run with a library of the
 * same major version and a minor version no older: compare these macros
 * (the header compiled against) with ps_version_number() (the library
 * loaded). psd's build refuses to configure when its project version
 * differs from these. */
#ifndef PSD_VERSION_H
#define PSD_VERSION_H

#define PSD_VERSION_MAJOR  1
#define PSD_VERSION_MINOR  0
#define PSD_VERSION_PATCH  0
#define PSD_VERSION_STRING "1.0.0"

/* major*10000 + minor*100 + patch, as ps_version_number() gives it */
#define PSD_VERSION_NUMBER (PSD_VERSION_MAJOR * 10000 + PSD_VERSION_MINOR * 100 + PSD_VERSION_PATCH)

#endif
