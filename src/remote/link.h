/* link.h: a connection between a device and a cloud server. TCP, secured by TLS 1.3 with a pre-shared key that both
 * sides hold (`tandem cloud keygen`): both are authenticated, and what crosses is encrypted and tamper-evident.
 * Plaintext only where the caller passes no key (the user asked for --insecure). Messages are the frames of wire.h
 * with a sequence number per direction, checked on receipt; every wait has a deadline. */
#ifndef TND_REMOTE_LINK_H
#define TND_REMOTE_LINK_H

#include "remote/wire.h"

enum { TND_LINK_KEY_BYTES = 32 };

typedef struct tnd_link_key {
    uint8_t bytes[TND_LINK_KEY_BYTES];
} tnd_link_key;

/* Writes a fresh random key to `path` (mode 0600; an existing file is not overwritten). */
tnd_status tnd_link_keygen(const char *path);
/* Reads a key file; TND_ERR_IO (missing, or readable by others than its owner), TND_ERR_FORMAT (not a key file). */
tnd_status tnd_link_key_load(const char *path, tnd_link_key *key);

typedef struct tnd_link tnd_link;
typedef struct tnd_listener tnd_listener;

/* Listens on "HOST:PORT" (port 0: any free port, see tnd_listener_port). */
tnd_status tnd_listener_open(const char *host_port, tnd_listener **out);
int tnd_listener_port(const tnd_listener *l);
/* Waits up to timeout_ms (< 0: for ever) for a device and completes the handshake with `key` (NULL: plaintext)
 * within 10 s. TND_ERR_IO for a
 * timeout, a peer that left or holds another key (the message says which). */
tnd_status tnd_listener_accept(tnd_listener *l, const tnd_link_key *key, int timeout_ms, tnd_link **out);
void tnd_listener_close(tnd_listener *l);

/* Connects to "HOST:PORT" and completes the handshake with `key` (NULL: plaintext) within timeout_ms. */
tnd_status tnd_link_connect(const char *host_port, const tnd_link_key *key, int timeout_ms, tnd_link **out);

/* Sends one message. TND_ERR_IO when the link is gone. */
tnd_status tnd_link_send(tnd_link *l, tnd_wire_type type, const void *payload, size_t n);
/* Receives the next message within timeout_ms (< 0: no deadline; TCP keepalive ends the wait where the peer is
 * gone): its header into *h and its payload into *payload (the link's memory, valid until the next receive). TND_ERR_IO for a timeout or a closed link, TND_ERR_FORMAT for a frame that is not
 * one or arrives out of sequence (lost, replayed or reordered). */
tnd_status tnd_link_recv(tnd_link *l, tnd_wire_header *h, const uint8_t **payload, int timeout_ms);
/* Whether a message (or the link's end) has begun to arrive within timeout_ms: a receive then does not wait for the
 * peer to begin. Reads nothing. */
bool tnd_link_readable(tnd_link *l, int timeout_ms);
/* Bytes of frames (headers and payloads) sent and received so far; TLS adds about 22 per record on the wire. */
void tnd_link_traffic(const tnd_link *l, uint64_t *sent, uint64_t *received);
/* Ends the link's traffic at once in both directions (a send or receive blocked on another thread returns with an
 * error); tnd_link_close still frees it. */
void tnd_link_abort(tnd_link *l);
void tnd_link_close(tnd_link *l);

#endif
