# Sourced by ci/compose-test.sh and ci/compose-ha-test.sh once they have set W (their engine's
# directory) and PROJECT: every docker and docker-compose call of theirs goes to their own
# dockerd on $W/docker.sock, never to another engine or to settings from the caller's shell.

# Debian's docker client (the one in /usr/local/bin, if any, lacks buildx/BuildKit support).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export DOCKER_HOST=unix://$W/docker.sock
export DOCKER_BUILDKIT=1
export COMPOSE_PROJECT_NAME=$PROJECT
unset COMPOSE_FILE DOCKER_CONTEXT DOCKER_CONFIG

# Timing for the scripts' step logs: now() is a timestamp, secs A B the seconds from A to B.
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
