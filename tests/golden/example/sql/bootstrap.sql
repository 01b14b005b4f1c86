-- Rendered by kgt from topology kgt-example: run once on the bootstrap node (mode 0600).
CREATE USER IF NOT EXISTS 'kgt_sst'@'localhost' IDENTIFIED BY 'FAKE-sst-password-0000';
GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, REPLICATION CLIENT ON *.* TO 'kgt_sst'@'localhost';
CREATE USER IF NOT EXISTS 'kgt_health'@'%' IDENTIFIED BY 'FAKE-health-password-0000';
GRANT USAGE ON *.* TO 'kgt_health'@'%';
CREATE USER IF NOT EXISTS 'kgt_admin'@'%' IDENTIFIED BY 'FAKE-admin-password-0000';
GRANT ALL PRIVILEGES ON *.* TO 'kgt_admin'@'%' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS keystone;
CREATE USER IF NOT EXISTS 'keystone'@'%' IDENTIFIED BY 'FAKE-keystone-db-password-0000';
GRANT ALL PRIVILEGES ON keystone.* TO 'keystone'@'%';
FLUSH PRIVILEGES;
