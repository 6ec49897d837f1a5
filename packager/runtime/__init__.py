"""Running a bundle the way a Unity host does: the host loops (LLM generation, Euler/CFG flow, HiFT noise), the
synthesis pipeline and text-to-speech. Never imports the build or the components."""
