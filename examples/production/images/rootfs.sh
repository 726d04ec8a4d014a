#!/bin/sh
# rootfs.sh runs inside the freshly debootstrapped root filesystem, before it
# is imported: what the official images prepare in their own RUN steps. Doing
# it here keeps the thin images to COPY steps, which build in seconds.
set -eu

# postgres
mkdir -p /docker-entrypoint-initdb.d /var/lib/postgresql/data /run/postgresql
chown -R postgres:postgres /var/lib/postgresql /run/postgresql
chmod 700 /var/lib/postgresql/data

# redis
mkdir -p /data /usr/local/etc/redis
chown redis:redis /data

# nginx: conf.d instead of sites-enabled, logs to the container's output
rm -f /etc/nginx/sites-enabled/default
mkdir -p /usr/share/nginx/html
echo '<h1>Welcome to nginx</h1>' > /usr/share/nginx/html/index.html
ln -sf /dev/stdout /var/log/nginx/access.log
ln -sf /dev/stderr /var/log/nginx/error.log

# no package caches in the image
rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/*
