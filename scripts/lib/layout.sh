# Sourced by the scripts that need the layout contract's paths (persona_core/layout.py).
# layout_paths QUERY [FLAGS...] -- NAME...: sets each shell variable NAME to the path of that name, asked from
# `python -m persona_core.layout_cli QUERY [FLAGS...] NAME...` (one path a line, in the order asked; run the
# query without names to list every name it knows).
layout_paths() {
    local query=() names lines output i
    while [ "$1" != "--" ]; do query+=("$1"); shift; done
    shift
    names=("$@")
    output=$("$PYTHON" -m persona_core.layout_cli "${query[@]}" "${names[@]}")
    mapfile -t lines <<< "$output"
    for i in "${!names[@]}"; do printf -v "${names[$i]}" '%s' "${lines[$i]}"; done
}
