"""What a member is told after a safety form on the group page (shared by the group page,
web.groups_pages, and the safety pages, web.safety_pages)."""

MEMBER_NOTICES = {
    "alert": "Sent. Only the facilitators see it; other members see nothing.",
    "report": "Thank you. Your report was sent; the person reported is never told who "
              "reported them.",
    "consent": "Thank you: your consent to group notes is recorded.",
    "withdrawn": "Your consent is withdrawn: no notes are taken while you are present. "
                 "Notes taken before now stay in the group's record.",
}
