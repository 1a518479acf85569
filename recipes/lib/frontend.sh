# The frontend's program (uv) for the wheel, repair and test recipes. Source
# it after common.sh, and list it in the rule's `includes` (the [defaults]
# recipe_includes of WORKSPACE.toml do). A file of its own: every pack
# recipe includes common.sh, and a change here must not rebuild them.
#
# uv comes from its wheel, unpacked at $REFINE_FRONTEND ([defaults]
# frontend: the uv of the machine whose programs run natively in this
# image, the host's in a hybrid one).
frontend() {
    [ -n "${REFINE_FRONTEND:-}" ] ||
        die "no frontend: this recipe runs uv; set \`frontend\` in [defaults] of WORKSPACE.toml (refine's base sets it)"
    set -- "$REFINE_FRONTEND"/*.data/scripts/uv
    [ -x "$1" ] || die "the frontend at $REFINE_FRONTEND has no uv program"
    printf '%s\n' "$1"
}
