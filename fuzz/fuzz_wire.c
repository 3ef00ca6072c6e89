/* fuzz_wire.c: the cloud link's message decoding (src/remote/wire.c) on arbitrary bytes: a frame header, then the
 * payload read as each message a peer may send. Nothing may read out of bounds, whatever the counts claim. */
#include "remote/wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size >= TND_WIRE_HEADER_BYTES) {
        tnd_wire_header h;
        (void)tnd_wire_get_header(data, &h);
    }
    enum { MAX_TOKENS = 64, EMBD = 16, MAX_TABLE = 256 };
    static uint32_t pos[MAX_TOKENS], slot[MAX_TOKENS], n_ctx[MAX_TOKENS], table_at[MAX_TOKENS], tables[MAX_TABLE];
    static float hidden[MAX_TOKENS * EMBD];
    tnd_wire_step s = {.pos = pos, .slot = slot, .n_ctx = n_ctx, .table_at = table_at, .tables = tables,
                       .hidden = hidden};
    tnd_wire_reader r = {.data = data, .len = size};
    (void)tnd_wire_get_step(&r, MAX_TOKENS, EMBD, MAX_TABLE, 16, &s);
    r = (tnd_wire_reader){.data = data, .len = size};
    tnd_wire_hello hello;
    (void)tnd_wire_get_hello(&r, &hello);
    r = (tnd_wire_reader){.data = data, .len = size};
    tnd_status st;
    char message[64];
    (void)tnd_wire_get_error(&r, &st, message, sizeof message);
    return 0;
}
