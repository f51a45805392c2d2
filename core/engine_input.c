/*
 * Input: whole packets parsed from the bytes the layers below hand up, in
 * place when they lie whole in what was given, else from the connection's
 * stash (bounded by the phase's packet limit, checked from the fixed header
 * before anything is buffered); dispatch by phase and type; the fairness
 * and back-pressure rules that make input wait.
 *
 * Runs on the thread that owns the connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

/* The protocol level of a CONNECT that did not decode, to answer in its
 * language; 0 when the protocol name is not MQTT's. */
static uint8_t connect_level(const uint8_t *body, size_t len)
{
    if (len >= 7 && body[0] == 0 && body[1] == 4 && memcmp(body + 2, "MQTT", 4) == 0)
        return body[6] == MQTT_V5 ? MQTT_V5 : MQTT_V311;
    if (len >= 9 && body[0] == 0 && body[1] == 6 && memcmp(body + 2, "MQIsdp", 6) == 0)
        return MQTT_V31;
    return 0;
}

static enum engine_status handle_packet(struct engine_conn *c, const struct mqtt_fixed *fh,
                                        const uint8_t *body)
{
    struct mqtt_packet pkt;
    int rc = codec_decode(fh, body, c->version, &pkt);
    if (c->phase == ENGINE_NEW) {
        if (fh->type != MQTT_CONNECT) {
            /* [MQTT-3.1.0-1] */
            engine_violation(c, MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
            return ENGINE_CLOSING;
        }
        if (rc != MQTT_RC_SUCCESS) {
            uint8_t level = connect_level(body, fh->remaining_len);
            COUNT(c->en, protocol_errors, 1);
            if (level == 0) {
                /* Not MQTT at all: no CONNACK in any version's format
                 * [MQTT-3.1.2-1]. */
                engine_close(c, "CONNECT with an unknown protocol name");
                return ENGINE_CLOSING;
            }
            /* An unknown level is answered in 3.1.1's format, 0x01
             * [MQTT-3.1.2-2]. */
            c->version = rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION ? MQTT_V311 : level;
            engine_connack_fail(c, (uint8_t)rc, "malformed CONNECT");
            return ENGINE_CLOSING;
        }
        return engine_handle_connect(c, &pkt.u.connect);
    }
    if (c->phase == ENGINE_AUTH) {
        /* Until CONNACK only AUTH or DISCONNECT may come [MQTT-3.1.2-30];
         * anything wrong is answered with a CONNACK (4.13.1). */
        if (rc != MQTT_RC_SUCCESS) {
            engine_auth_fail(c, (uint8_t)rc, "malformed packet during authentication");
            return ENGINE_CLOSING;
        }
        if (pkt.type == MQTT_DISCONNECT) {
            engine_close(c, "DISCONNECT during authentication");
            return ENGINE_CLOSING;
        }
        if (pkt.type != MQTT_AUTH) {
            engine_auth_fail(c, MQTT_RC_PROTOCOL_ERROR, "packet other than AUTH before CONNACK");
            return ENGINE_CLOSING;
        }
        return engine_handle_auth(c, &pkt.u.disconnect);
    }
    if (rc != MQTT_RC_SUCCESS) {
        engine_violation(c, (uint8_t)rc, codec_type_name(fh->type));
        return ENGINE_CLOSING;
    }
    switch (pkt.type) {
    case MQTT_PUBLISH:
        engine_handle_publish(c, &pkt.u.publish);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        engine_handle_ack(c, pkt.type, &pkt.u.ack);
        break;
    case MQTT_SUBSCRIBE:
        engine_handle_subscribe(c, &pkt.u.subscribe);
        break;
    case MQTT_UNSUBSCRIBE:
        engine_handle_unsubscribe(c, &pkt.u.subscribe);
        break;
    case MQTT_PINGREQ: {
        struct mqtt_packet p = {.type = MQTT_PINGRESP};
        engine_write_packet(c, &p);
        break;
    }
    case MQTT_DISCONNECT:
        engine_handle_disconnect(c, &pkt.u.disconnect);
        break;
    case MQTT_CONNECT:
        engine_violation(c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT"); /* [MQTT-3.1.0-2] */
        return ENGINE_CLOSING;
    case MQTT_AUTH:
        return engine_handle_auth(c, &pkt.u.disconnect);
    default:
        engine_violation(c, MQTT_RC_PROTOCOL_ERROR, "server-to-client packet from a client");
        return ENGINE_CLOSING;
    }
    return c->phase == ENGINE_CLOSED ? ENGINE_CLOSING : ENGINE_CONSUMED;
}

/* Input waits while another shard's queue is full (back-pressure) or this
 * turn's input budget is spent (fairness to output). */
static bool input_held(const struct engine *en)
{
    return engine_fx_congested(en) || en->turn_in_bytes >= LOOP_TURN_INPUT_BYTES_MAX;
}

/* Checks a packet's fixed header against what this phase accepts, before
 * anything is buffered. Returns 1 (go on), 0 (wait for more bytes) or -1
 * (the connection closes). */
static int check_header(struct engine_conn *c, const uint8_t *p, size_t avail,
                        struct mqtt_fixed *fh)
{
    const struct config *cfg = engine_cfg(c);
    int r = codec_parse_fixed(p, avail, fh);
    if (r == MQTT_NEED_MORE)
        return 0;
    if (r != 0) {
        if (c->phase == ENGINE_NEW)
            engine_close(c, "malformed fixed header before CONNECT");
        else if (c->phase == ENGINE_AUTH)
            engine_auth_fail(c, (uint8_t)r, "malformed fixed header during authentication");
        else
            engine_violation(c, (uint8_t)r, "malformed fixed header");
        return -1;
    }
    uint64_t total = (uint64_t)fh->header_len + fh->remaining_len;
    if (c->phase == ENGINE_NEW && total > cfg->max_connect_size) {
        /* Checked from the fixed header: an unauthenticated client gets no
         * more than max_connect_size of buffer [issue 7 defect 7]. A 5.0
         * client hears why: the protocol level is at most 9 bytes into the
         * body, so that much is waited for. */
        size_t body_len = avail - fh->header_len;
        uint8_t level = connect_level(p + fh->header_len, body_len);
        if (level == 0 && body_len < 9 && fh->type == MQTT_CONNECT)
            return 0; /* stashed: a few bytes more tell the version */
        if (level == MQTT_V5) {
            c->version = MQTT_V5;
            engine_connack_fail(c, MQTT_RC_PACKET_TOO_LARGE, "CONNECT over max_connect_size");
        } else {
            engine_close(c, "CONNECT over max_connect_size");
        }
        COUNT(c->en, connect_too_large, 1);
        return -1;
    }
    if (total > cfg->max_packet_size) {
        /* Checked from the fixed header, before buffering [MQTT-3.2.2-15]. */
        if (c->phase == ENGINE_NEW)
            engine_close(c, "CONNECT over max_packet_size");
        else
            engine_violation(c, MQTT_RC_PACKET_TOO_LARGE, "packet over max_packet_size");
        return -1;
    }
    if (c->phase == ENGINE_AUTH && total > ENGINE_AUTH_PACKET_MAX) {
        /* Before CONNACK only AUTH may come, and its data is bounded:
         * nothing larger is buffered for an unauthenticated client. */
        engine_auth_fail(c, MQTT_RC_PACKET_TOO_LARGE, "packet over the size of an AUTH exchange");
        return -1;
    }
    return total <= avail ? 1 : 0;
}

/* Must this whole packet wait before it is handled? */
static bool packet_waits(struct engine_conn *c, const struct mqtt_fixed *fh)
{
    if (c->phase != ENGINE_ACTIVE)
        return false;
    if (fh->type == MQTT_SUBSCRIBE && (c->retained_pending || engine_rb_waiting(c->client))) {
        /* The retained messages of its last SUBSCRIBE still wait for room:
         * the next one waits for them (engine_rb_pump resumes), so a
         * pipeline of SUBSCRIBEs cannot walk the store over and over while
         * the output is full. Its input stops at the stash bound. */
        return true;
    }
    if (fh->type == MQTT_PUBLISH && flow_held(c->en, c->client)) {
        /* A draining subscriber of its messages is behind (flow.c):
         * publishes wait, acknowledgements and everything else still flow
         * so that it can drain. */
        c->en->input_held = true;
        engine_yield(c);
        return true;
    }
    return false;
}

/* Parses whole packets from p[0..len); returns the bytes consumed. Stops
 * at an incomplete packet, when the connection closes, waits or moves, and
 * after LOOP_READ_BYTES_MAX bytes (the rest waits for the next turn). */
static size_t parse(struct engine_conn *c, const uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        if (c->phase != ENGINE_NEW && c->phase != ENGINE_AUTH && c->phase != ENGINE_ACTIVE)
            break; /* closed, checking a password, or placed elsewhere */
        if (c->pause & ENGINE_PAUSE_OUTPUT) {
            /* Its replies are not being read: stop reading it too. */
            engine_yield(c);
            break;
        }
        if (off >= LOOP_READ_BYTES_MAX || input_held(c->en)) {
            /* This turn's share is used up, or another shard's queue is
             * full: the rest waits (engine_input keeps it in order). */
            engine_yield(c);
            break;
        }
        struct mqtt_fixed fh;
        if (check_header(c, p + off, len - off, &fh) <= 0 || packet_waits(c, &fh))
            break;
        size_t total = (size_t)fh.header_len + fh.remaining_len;
        if (c->phase == ENGINE_ACTIVE && !engine_rate_admits(c, fh.type, total))
            break; /* over its rate: the rest waits, reading pauses */
        /* Keepalive counts whole packets [MQTT-3.1.2-24]: a client that
         * trickles a byte at a time without ever finishing one is silent. */
        c->last_rx_ms = c->en->now_ms;
        c->en->turn_in_bytes += total;
        enum engine_status st = handle_packet(c, &fh, p + off + fh.header_len);
        off += total;
        if (st != ENGINE_CONSUMED)
            break;
    }
    return off;
}

/* The largest packet this connection may send in its phase; what waits in
 * its input never grows beyond it plus one receive. */
static uint64_t packet_limit(const struct engine_conn *c)
{
    switch (c->phase) {
    case ENGINE_NEW:
        return engine_cfg(c)->max_connect_size;
    case ENGINE_AUTH:
        return ENGINE_AUTH_PACKET_MAX;
    case ENGINE_ACTIVE:
        return engine_cfg(c)->max_packet_size;
    default:
        return 0; /* nothing is parsed meanwhile: ENGINE_CONGEST_STASH_MAX holds */
    }
}

/* Should reading pause with what waits unparsed? Past ENGINE_CONGEST_STASH_MAX,
 * yes, unless all that waits is the start of one packet within the limit:
 * that packet must be read to its end or the connection would wait for
 * bytes it stopped reading [issue 7 defect 4]. */
static bool stash_full(const struct engine_conn *c)
{
    size_t waiting = c->in.len - c->in_off;
    if (waiting < ENGINE_CONGEST_STASH_MAX)
        return false;
    struct mqtt_fixed fh;
    if (codec_parse_fixed(c->in.data + c->in_off, waiting, &fh) != 0)
        return true; /* malformed: parse() says so when it runs */
    uint64_t total = (uint64_t)fh.header_len + fh.remaining_len;
    return total <= waiting || total > packet_limit(c);
}

static int stash(struct engine_conn *c, const uint8_t *data, size_t len)
{
    if (c->in_off && c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
    } else if (c->in_off) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (buf_reserve(&c->in, len))
        return -ENOMEM;
    memcpy(c->in.data + c->in.len, data, len);
    c->in.len += len;
    return 0;
}

/* The output has room again: work that waited for it goes on. */
static void output_room(struct engine_conn *c)
{
    struct client *cl = c->client;
    if (!cl || c->phase != ENGINE_ACTIVE)
        return;
    if (cl->holding_n)
        flow_drained(c->en, cl); /* QoS 0 holds end as the output empties */
    if (engine_rb_waiting(cl))
        engine_rb_pump(c->en, cl);
}

static enum engine_status status_of(const struct engine_conn *c)
{
    if (c->phase == ENGINE_CLOSED)
        return ENGINE_CLOSING;
    if (c->phase == ENGINE_PLACED)
        return ENGINE_HANDOFF;
    return c->yielded ? ENGINE_YIELD : ENGINE_CONSUMED;
}

int engine_keep_input(struct engine_conn *c, const uint8_t *data, size_t len)
{
    return stash(c, data, len);
}

enum engine_status engine_resume(struct engine_conn *c)
{
    c->yielded = false;
    output_room(c); /* retained messages deferred by their budget */
    size_t n = parse(c, c->in.data + c->in_off, c->in.len - c->in_off);
    c->in_off += n;
    if ((c->pause & ENGINE_PAUSE_CONGEST) && !stash_full(c))
        engine_unpause(c, ENGINE_PAUSE_CONGEST);
    if (c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
        if (c->in.cap > 4 * BUF_RING_BUF_SIZE)
            buf_free(&c->in); /* a large packet passed: give its buffer back */
    }
    return status_of(c);
}

enum engine_status engine_input(struct engine_conn *c, const uint8_t *data, size_t len)
{
    if (c->phase == ENGINE_CLOSED)
        return ENGINE_CLOSING;
    if (c->in.len > c->in_off || c->yielded || input_held(c->en) || c->phase == ENGINE_VERIFY ||
        c->phase == ENGINE_PLACED) {
        /* Earlier bytes wait, or input is held: keep the order, and stop
         * reading once a bounded amount waits. */
        if (stash(c, data, len)) {
            engine_close(c, "out of memory");
            return ENGINE_CLOSING;
        }
        if (stash_full(c))
            engine_pause(c, ENGINE_PAUSE_CONGEST); /* whatever the reason input waits */
        if (input_held(c->en))
            engine_yield(c);
        if (c->yielded || c->phase == ENGINE_VERIFY || c->phase == ENGINE_PLACED)
            return status_of(c);
        return engine_resume(c);
    }
    size_t n = parse(c, data, len);
    if (n < len && c->phase != ENGINE_CLOSED) {
        /* A partial packet (or a deferred rest, or what follows a CONNECT
         * being checked or moved) is copied; its length was already
         * checked against the limit. */
        if (stash(c, data + n, len - n))
            engine_close(c, "out of memory");
        else if (stash_full(c) && (c->yielded || c->phase == ENGINE_VERIFY))
            engine_pause(c, ENGINE_PAUSE_CONGEST);
    }
    return status_of(c);
}

void engine_output_drained(struct engine_conn *c, size_t sent_bytes, size_t pending_bytes)
{
    struct engine *en = c->en;
    if (sent_bytes)
        c->last_tx_ms = en->now_ms;
    if ((c->pause & ENGINE_PAUSE_OUTPUT) &&
        c->out.len + pending_bytes < en->cfg->max_output_buffer / 2)
        engine_unpause(c, ENGINE_PAUSE_OUTPUT);
    output_room(c);
}
