# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_tagcache_global_optspecs
    string join \n h/help V/version
end

function __fish_tagcache_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_tagcache_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_tagcache_using_subcommand
    set -l cmd (__fish_tagcache_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c tagcache -n "__fish_tagcache_needs_command" -s h -l help -d 'Print help'
complete -c tagcache -n "__fish_tagcache_needs_command" -s V -l version -d 'Print version'
complete -c tagcache -n "__fish_tagcache_needs_command" -f -a "run" -d 'Run the proxy and the admin listener'
complete -c tagcache -n "__fish_tagcache_needs_command" -f -a "check" -d 'Validate a config file and exit (2 when it is invalid)'
complete -c tagcache -n "__fish_tagcache_needs_command" -f -a "purge" -d 'Purge cached entries through a running instance\'s admin API'
complete -c tagcache -n "__fish_tagcache_needs_command" -f -a "reload" -d 'Reload a running instance\'s config file through its admin API'
complete -c tagcache -n "__fish_tagcache_needs_command" -f -a "health" -d 'Ask a running instance\'s admin listener whether it is healthy'
complete -c tagcache -n "__fish_tagcache_needs_command" -f -a "schema" -d 'Print the JSON Schema of the config file'
complete -c tagcache -n "__fish_tagcache_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c tagcache -n "__fish_tagcache_needs_command" -f -a "man" -d 'Print the man page, or write every page (one per command) to a directory'
complete -c tagcache -n "__fish_tagcache_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tagcache -n "__fish_tagcache_using_subcommand run" -s c -l config -d 'Config file' -r -F
complete -c tagcache -n "__fish_tagcache_using_subcommand run" -l upgrade -d 'Take the listening sockets over from the running process (send it SIGQUIT once this one waits): a zero-downtime binary upgrade'
complete -c tagcache -n "__fish_tagcache_using_subcommand run" -s h -l help -d 'Print help'
complete -c tagcache -n "__fish_tagcache_using_subcommand check" -s c -l config -d 'Config file' -r -F
complete -c tagcache -n "__fish_tagcache_using_subcommand check" -s h -l help -d 'Print help'
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l tag -d 'A tag to purge (repeatable)' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l url -d 'A URL (path and query) whose entry to purge (repeatable), for the identity given by --workspace and --user' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l workspace -d 'A workspace to purge whole (repeatable); with --url, the workspace the URLs were stored for instead' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l user -d 'With --url: the user the URLs were stored for' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l event -d 'Send this invalidation event (POST /events), with its --field values' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l field -d 'A field of the event, KEY=VALUE (repeatable), e.g. --field workspace_id=w1' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l admin -d 'Admin API base URL, http:// or https://' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l token -d 'Admin token (prefer the environment variable)' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l connect-timeout -d 'How long to wait for the connection (TCP and TLS): 5s, 500ms, 2.5' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l timeout -d 'How long to wait for the answer once connected' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l all -d 'Purge everything cached (never soft: the server refuses soft with all)'
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -l soft -d 'Mark entries stale (served while refreshed) instead of dropping them'
complete -c tagcache -n "__fish_tagcache_using_subcommand purge" -s h -l help -d 'Print help'
complete -c tagcache -n "__fish_tagcache_using_subcommand reload" -l admin -d 'Admin API base URL, http:// or https://' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand reload" -l token -d 'Admin token (prefer the environment variable)' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand reload" -l connect-timeout -d 'How long to wait for the connection (TCP and TLS): 5s, 500ms, 2.5' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand reload" -l timeout -d 'How long to wait for the answer once connected' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand reload" -s h -l help -d 'Print help'
complete -c tagcache -n "__fish_tagcache_using_subcommand health" -l admin -d 'Admin API base URL, http:// or https://' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand health" -l connect-timeout -d 'How long to wait for the connection' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand health" -l timeout -d 'How long to wait for the answer once connected' -r
complete -c tagcache -n "__fish_tagcache_using_subcommand health" -s h -l help -d 'Print help'
complete -c tagcache -n "__fish_tagcache_using_subcommand schema" -s h -l help -d 'Print help'
complete -c tagcache -n "__fish_tagcache_using_subcommand completions" -s h -l help -d 'Print help'
complete -c tagcache -n "__fish_tagcache_using_subcommand man" -l out-dir -d 'Write tagcache.1 and a page per command here instead' -r -F
complete -c tagcache -n "__fish_tagcache_using_subcommand man" -s h -l help -d 'Print help'
complete -c tagcache -n "__fish_tagcache_using_subcommand help; and not __fish_seen_subcommand_from run check purge reload health schema completions man help" -f -a "run" -d 'Run the proxy and the admin listener'
complete -c tagcache -n "__fish_tagcache_using_subcommand help; and not __fish_seen_subcommand_from run check purge reload health schema completions man help" -f -a "check" -d 'Validate a config file and exit (2 when it is invalid)'
complete -c tagcache -n "__fish_tagcache_using_subcommand help; and not __fish_seen_subcommand_from run check purge reload health schema completions man help" -f -a "purge" -d 'Purge cached entries through a running instance\'s admin API'
complete -c tagcache -n "__fish_tagcache_using_subcommand help; and not __fish_seen_subcommand_from run check purge reload health schema completions man help" -f -a "reload" -d 'Reload a running instance\'s config file through its admin API'
complete -c tagcache -n "__fish_tagcache_using_subcommand help; and not __fish_seen_subcommand_from run check purge reload health schema completions man help" -f -a "health" -d 'Ask a running instance\'s admin listener whether it is healthy'
complete -c tagcache -n "__fish_tagcache_using_subcommand help; and not __fish_seen_subcommand_from run check purge reload health schema completions man help" -f -a "schema" -d 'Print the JSON Schema of the config file'
complete -c tagcache -n "__fish_tagcache_using_subcommand help; and not __fish_seen_subcommand_from run check purge reload health schema completions man help" -f -a "completions" -d 'Print a shell completion script'
complete -c tagcache -n "__fish_tagcache_using_subcommand help; and not __fish_seen_subcommand_from run check purge reload health schema completions man help" -f -a "man" -d 'Print the man page, or write every page (one per command) to a directory'
complete -c tagcache -n "__fish_tagcache_using_subcommand help; and not __fish_seen_subcommand_from run check purge reload health schema completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
