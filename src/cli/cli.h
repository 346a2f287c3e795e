/* SPDX-License-Identifier: Apache-2.0
 *
 * cli.h -- command-line subcommands other than `serve` (which lives in main.c).
 *
 * Each takes argc/argv with argv[0] = the subcommand name and returns the process exit code
 * (0 ok, 1 failure, 2 usage error).  They run without a server where they can: `logs` reads
 * the data directory directly.
 */
#ifndef CLI_H
#define CLI_H

/* tributary logs FUNCTION [--data DIR] [--follow] [--lines N]
 * Print DIR/functions/FUNCTION/logs/function.log (its last N lines, all by default); with
 * --follow keep printing what is appended (through rotation) until interrupted. */
int cli_logs_main(int argc, char **argv);

#endif
