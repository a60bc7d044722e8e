package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Positional arguments and unknown commands. cobra's own messages ("accepts
// 1 arg(s), received 0", "unknown flag: --repo" for a mistyped
// subcommand) say neither what is missing nor what was meant; these do.

// argNames accepts exactly the named positional arguments and names the
// missing or extra ones: "missing REV (usage: strata repo show --repo R REV)".
// A name in brackets ("[DIR]") is optional and must come last.
func argNames(names ...string) cobra.PositionalArgs {
	required := 0
	for _, n := range names {
		if !strings.HasPrefix(n, "[") {
			required++
		}
	}
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < required {
			return usagef("missing %s (usage: %s)", strings.Join(names[len(args):required], " "), usageLine(cmd))
		}
		if len(args) > len(names) {
			return extraArgs(cmd, args[len(names):])
		}
		return nil
	}
}

// atLeast accepts one or more of the named argument.
func atLeast(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usagef("missing %s (usage: %s)", name, usageLine(cmd))
		}
		return nil
	}
}

// noArgs refuses positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return extraArgs(cmd, args)
	}
	return nil
}

func extraArgs(cmd *cobra.Command, extra []string) error {
	return usagef("unexpected argument %q (usage: %s)", extra[0], usageLine(cmd))
}

// usageLine is the command's path and synopsis.
func usageLine(cmd *cobra.Command) string {
	return cmd.UseLine()
}

// elsewhere names the strata command for a word an ostree or rpm-ostree
// user types at the top level.
var elsewhere = map[string]string{
	"admin": "ostree admin's verbs are strata's top-level commands: strata status, deploy, undeploy, pin, kargs, cleanup, finalize",
	"db":    "strata repo diff REV1 REV2 compares two commits",
}

// finishTree makes every command that has subcommands refuse an unknown
// one with a usage error and the closest names ("did you mean"), at every
// level, instead of cobra's help page with exit code 0 or its "unknown
// flag" for a mistyped subcommand followed by its flags.
func finishTree(cmd *cobra.Command) {
	if cmd.HasSubCommands() {
		cmd.Args = unknownSubcommand
		cmd.SuggestionsMinimumDistance = 2
		if cmd.RunE == nil && cmd.Run == nil {
			cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	}
	for _, c := range cmd.Commands() {
		finishTree(c)
	}
}

// flagError makes a flag error a usage error. On a command with
// subcommands, a flag that belongs to a mistyped subcommand ("repo logs
// --repo R") is reported as the unknown subcommand it follows.
func flagError(cmd *cobra.Command, err error) error {
	if cmd.HasSubCommands() && cmd.Flags().NArg() > 0 {
		return unknownSubcommand(cmd, cmd.Flags().Args())
	}
	return usageError{err}
}

// unknownSubcommand is the Args of a command with subcommands: any
// argument is a subcommand cobra did not find.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	word := args[0]
	msg := fmt.Sprintf("unknown command %s for %s", word, cmd.CommandPath())
	var hints []string
	for _, s := range cmd.SuggestionsFor(word) {
		hints = append(hints, cmd.CommandPath()+" "+s)
	}
	if !cmd.HasParent() {
		// A command of a group typed at the top level: strata log.
		for _, g := range cmd.Commands() {
			if sub, _, err := g.Find([]string{word}); err == nil && sub != g {
				hints = append(hints, sub.CommandPath())
			}
		}
		if e, ok := elsewhere[word]; ok {
			return usagef("%s; %s", msg, e)
		}
	}
	if len(hints) > 0 {
		return usagef("%s; did you mean %s?", msg, strings.Join(hints, " or "))
	}
	return usagef("%s; see %s --help", msg, cmd.CommandPath())
}
