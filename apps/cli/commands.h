/* commands.h: the subcommands of the `tandem` program; each takes argc/argv after its name and returns an exit
 * code (0 ok, 1 failure, 2 usage). */
#ifndef TND_CLI_COMMANDS_H
#define TND_CLI_COMMANDS_H

int tnd_cmd_info(int argc, char **argv);
int tnd_cmd_convert(int argc, char **argv);
int tnd_cmd_logits(int argc, char **argv);
int tnd_cmd_quantize(int argc, char **argv);
int tnd_cmd_model(int argc, char **argv);
int tnd_cmd_bench(int argc, char **argv);
int tnd_cmd_run(int argc, char **argv);
int tnd_cmd_chat(int argc, char **argv);
int tnd_cmd_serve(int argc, char **argv);
int tnd_cmd_perplexity(int argc, char **argv);
int tnd_cmd_embed(int argc, char **argv);
int tnd_cmd_tokenize(int argc, char **argv);
int tnd_cmd_detokenize(int argc, char **argv);
int tnd_cmd_plan(int argc, char **argv);
int tnd_cmd_devices(int argc, char **argv);
int tnd_cmd_cloud(int argc, char **argv);

#endif
