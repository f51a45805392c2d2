/*
 * Telling systemd how the broker is (net/notify.c): state is "READY=1",
 * "RELOADING=1" (sent with MONOTONIC_USEC) or "STOPPING=1". Main thread.
 */
#ifndef RINGMQ_NOTIFY_H
#define RINGMQ_NOTIFY_H

void notify_systemd(const char *state);

#endif
