/* Airlock's version string, one place. */
#ifndef AIRLOCK_VERSION_H
#define AIRLOCK_VERSION_H
#define AL_VERSION "0.1.0"
#endif
