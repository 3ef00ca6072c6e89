/* cmd_info.c: `tandem info MODEL.gguf [--json] [--tensors]`: placeholder replaced below. */
#include "commands.h"
int tnd_cmd_info(int argc, char **argv) { (void)argc; (void)argv; return 1; }
