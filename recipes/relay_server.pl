#!/usr/bin/perl
# relay_server.pl PORT: answer each line with "HOST got: LINE" until stopped.
use strict;
use warnings;
use IO::Socket::INET;

$| = 1;
my $port = shift or die "usage: relay_server.pl PORT\n";
chomp(my $name = `hostname`);
my $server = IO::Socket::INET->new(
    LocalPort => $port, Listen => 16, ReuseAddr => 1, Proto => 'tcp'
) or die "relay_server: cannot listen on $port: $!\n";
print "listening on port $port\n";
while (my $client = $server->accept) {
    my $peer = $client->peerhost;
    while (my $line = <$client>) {
        chomp $line;
        print "from $peer: $line\n";
        print $client "$name got: $line\n";
    }
    close $client;
}
