/*
 * Admission: who may connect, decided as early as the information allows.
 *
 * At accept (on a PROXY listener: once the header has said whose
 * connection it is), from the address alone and before a byte is read or
 * any TLS work is done: allow_from / deny_from, the ban_file's ip bans,
 * the temporary bans flapping and failed logins earned, max_connect_rate
 * (the listener's, all addresses together), max_connect_rate_per_ip,
 * max_connections_per_ip, and flapping_max_connects by address. A refused
 * connection is closed without a byte; each refusal is counted by reason
 * and logged at debug level with the address.
 *
 * At CONNECT, from the client id and username: the ban_file's clientid and
 * username bans and the flapping bans by id and name (0x8A Banned; 3.1.1:
 * 5), and the shard's overload state (0x89 Server busy; 3.1.1: 3).
 *
 * The per-address and per-name state is the broker's one tally
 * (security/tally.h): a limit holds for the whole broker although one
 * address's connections land on different shards, and a ban one shard
 * decides holds on every shard at once.
 *
 * Shard threads; nothing here calls conn.c or shard.c.
 */
#ifndef RINGMQ_ADMIT_H
#define RINGMQ_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct shard;
struct broker;

/* Does this config need the tally (a per-address limit, flapping or
 * failed logins)? */
struct config;
bool admit_needs_tally(const struct config *c);

/* May a connection from ss come in on listener li? True with *slot: the
 * tally slot of the connections it holds (TALLY_NONE for none), for
 * admit_release when it ends. False: refused, counted and logged. An
 * address that cannot be read (AF_UNSPEC: the peer reset at once) is let
 * through; its receive ends it. */
bool admit_address(struct shard *sh, unsigned li, const struct sockaddr_storage *ss,
                   uint32_t *slot);
void admit_release(struct broker *b, uint32_t slot);

/* May this client id and username (either may be NULL / 0) connect now?
 * 0, MQTT_RC_BANNED or MQTT_RC_SERVER_BUSY with *why for the log. count:
 * this is the CONNECT's last check (after authentication): it counts
 * towards flapping_max_connects by id and by name. */
uint8_t admit_client(struct shard *sh, const uint8_t *id, size_t id_len, const uint8_t *user,
                     size_t user_len, bool count, const char **why);

/* A login from ss failed (a wrong password or an unknown user): counts
 * towards auth_failures_max, which bans the address when reached. */
void admit_login_failed(struct shard *sh, const struct sockaddr_storage *ss);

/* The shard's loop turn took turn_us: the overload state (overload_lag_ms)
 * follows it, logged when it changes. now_ms: the shard's clock. */
void admit_turn(struct shard *sh, uint64_t turn_us, uint64_t now_ms);

#endif
